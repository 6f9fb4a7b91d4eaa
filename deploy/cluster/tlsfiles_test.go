package cluster

import (
	"crypto/tls"
	"errors"
	"path/filepath"
	"testing"
)

// TestTLSFiles: the host's certificate and key and the CA load into TLS
// configurations; a missing or mismatched file is ErrTLSFiles.
func TestTLSFiles(t *testing.T) {
	f, dir := initSecrets(t)
	h := f.Hosts[0].Name
	cert, key, ca := filepath.Join(dir, HostCertFile(h)), filepath.Join(dir, HostKeyFile(h)), filepath.Join(dir, CACertFile)
	sc, err := ServerTLS(cert, key, ca)
	if err != nil || len(sc.Certificates) != 1 || sc.ClientAuth != tls.RequireAndVerifyClientCert || sc.ClientCAs == nil {
		t.Fatalf("ServerTLS with a client CA: %+v, %v", sc, err)
	}
	if sc, err := ServerTLS(cert, key, ""); err != nil || sc.ClientAuth != tls.NoClientCert {
		t.Fatalf("ServerTLS without a client CA: %v", err)
	}
	if cc, err := ClientTLS(ca, cert, key); err != nil || cc.RootCAs == nil || len(cc.Certificates) != 1 {
		t.Fatalf("ClientTLS: %v", err)
	}
	for name, err := range map[string]error{
		"no key":           func() error { _, err := ServerTLS(cert, "", ""); return err }(),
		"key of the CA":    func() error { _, err := ServerTLS(cert, filepath.Join(dir, CAKeyFile), ""); return err }(),
		"missing CA":       func() error { _, err := ClientTLS(filepath.Join(dir, "nope.crt"), "", ""); return err }(),
		"a key as CA":      func() error { _, err := ClientTLS(key, "", ""); return err }(),
		"no CA":            func() error { _, err := ClientTLS("", "", ""); return err }(),
		"cert without key": func() error { _, err := ClientTLS(ca, cert, ""); return err }(),
	} {
		if !errors.Is(err, ErrTLSFiles) {
			t.Errorf("%s: %v, want ErrTLSFiles", name, err)
		}
	}
}
