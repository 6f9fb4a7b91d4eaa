package cluster

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// ErrTLSFiles: a certificate, key or CA file cannot be used for TLS
// (missing, not PEM, or a key that does not match its certificate).
var ErrTLSFiles = errors.New("cluster: unusable TLS files")

// ServerTLS is the TLS configuration of a server of the cluster (the
// coordinator API, the serving endpoint) from a host's certificate and key
// as Init writes them (host-<name>.crt, host-<name>.key). With
// clientCAFile, every client must present a certificate signed by that CA
// (mutual TLS); without it, clients are not asked for one.
func ServerTLS(certFile, keyFile, clientCAFile string) (*tls.Config, error) {
	if certFile == "" || keyFile == "" {
		return nil, fmt.Errorf("%w: a TLS server needs both a certificate and its key (host-<name>.crt and host-<name>.key from `maas cluster init`)", ErrTLSFiles)
	}
	cert, err := loadKeyPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	if clientCAFile != "" {
		pool, err := LoadCertPool(clientCAFile)
		if err != nil {
			return nil, err
		}
		c.ClientCAs, c.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return c, nil
}

// ClientTLS is the TLS configuration of a client of the cluster: it trusts
// the certificates caFile signed, and no others (not the system's roots).
// With certFile and keyFile it presents that certificate to a server that
// asks for one.
func ClientTLS(caFile, certFile, keyFile string) (*tls.Config, error) {
	if caFile == "" {
		return nil, fmt.Errorf("%w: a TLS client needs the cluster's CA certificate (ca.crt from `maas cluster init`)", ErrTLSFiles)
	}
	pool, err := LoadCertPool(caFile)
	if err != nil {
		return nil, err
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}
	if certFile != "" || keyFile != "" {
		if certFile == "" || keyFile == "" {
			return nil, fmt.Errorf("%w: a client certificate needs both the certificate and its key", ErrTLSFiles)
		}
		cert, err := loadKeyPair(certFile, keyFile)
		if err != nil {
			return nil, err
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

// LoadCertPool reads a file of PEM certificates (ca.crt) into a pool.
func LoadCertPool(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: CA certificate: %v", ErrTLSFiles, err)
	}
	pool, err := CertPool(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return pool, nil
}

// CertPool parses PEM certificates into a pool; it fails when there is
// none.
func CertPool(pemData []byte) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemData) {
		return nil, fmt.Errorf("%w: no PEM certificate found; give the cluster's ca.crt", ErrTLSFiles)
	}
	return pool, nil
}

func loadKeyPair(certFile, keyFile string) (tls.Certificate, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("%w: %s and %s: %v; give a host's certificate and key from `maas cluster init`", ErrTLSFiles, certFile, keyFile, err)
	}
	return cert, nil
}

// PeerTLS is the TLS configuration of a link between two processes of the
// cluster where each side proves itself (the coordinators' Raft
// connections): it presents the host's certificate, trusts only the
// certificates caFile signed, and requires one from the other side.
func PeerTLS(caFile, certFile, keyFile string) (*tls.Config, error) {
	if caFile == "" || certFile == "" || keyFile == "" {
		return nil, fmt.Errorf("%w: a mutual TLS link needs the cluster's CA certificate and a host's certificate and key (ca.crt, host-<name>.crt and .key from `maas cluster init`)", ErrTLSFiles)
	}
	c, err := ClientTLS(caFile, certFile, keyFile)
	if err != nil {
		return nil, err
	}
	c.ClientCAs, c.ClientAuth = c.RootCAs, tls.RequireAndVerifyClientCert
	return c, nil
}
