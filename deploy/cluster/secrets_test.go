package cluster

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nkeys"

	"github.com/maas-ml/maas/internal/auth"
)

// initSecrets runs Init for the test cluster into a new directory and
// returns the cluster and the directory.
func initSecrets(t *testing.T) (*File, string) {
	t.Helper()
	f := loadTestdata(t)
	dir := filepath.Join(t.TempDir(), "secrets")
	if _, err := Init(f, dir, InitOptions{}); err != nil {
		t.Fatal(err)
	}
	return f, dir
}

// wantFiles are the files Init writes for cluster f.
func wantFiles(f *File) []string {
	names := []string{CACertFile, CAKeyFile, NATSUsersFile, TokensFile, OperatorSeedFile}
	for _, h := range f.Hosts {
		names = append(names, HostCertFile(h.Name), HostKeyFile(h.Name))
	}
	for _, p := range f.Processes() {
		if p.Kind != KindNATS {
			names = append(names, SeedFile(p.ID))
		}
	}
	for _, r := range auth.Roles {
		names = append(names, TokenFile(r))
	}
	sort.Strings(names)
	return names
}

// listDir lists the names in dir, sorted.
func listDir(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestInitWritesPrivateFiles(t *testing.T) {
	f, dir := initSecrets(t)
	info, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o700 {
		t.Errorf("%s is mode %04o, want 0700", dir, info.Mode().Perm())
	}
	got, want := listDir(t, dir), wantFiles(f)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("files:\n%v\nwant\n%v", got, want)
	}
	for _, name := range got {
		info, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if !info.Mode().IsRegular() || info.Mode().Perm() != 0o600 || info.Size() == 0 {
			t.Errorf("%s: mode %v, %d bytes; want a non-empty 0600 file", name, info.Mode(), info.Size())
		}
	}
	if entries := listDir(t, filepath.Dir(dir)); fmt.Sprint(entries) != "[secrets]" {
		t.Errorf("beside the secrets directory: %v", entries)
	}
}

func readPEMCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" {
		t.Fatalf("%s: no PEM certificate", path)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func caPool(t *testing.T, dir string) *x509.CertPool {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(readPEMCert(t, filepath.Join(dir, CACertFile)))
	return pool
}

func TestCertificates(t *testing.T) {
	f, dir := initSecrets(t)
	_, otherDir := initSecrets(t)
	ca := readPEMCert(t, filepath.Join(dir, CACertFile))
	if ca.Subject.CommonName != "test-lab maas CA" || !ca.IsCA || ca.PublicKeyAlgorithm != x509.ECDSA {
		t.Errorf("CA: CN %q, IsCA %v, key %v", ca.Subject.CommonName, ca.IsCA, ca.PublicKeyAlgorithm)
	}
	if life := ca.NotAfter.Sub(ca.NotBefore); life < CALifetime || life > CALifetime+2*time.Hour {
		t.Errorf("CA lifetime %v", life)
	}
	now := time.Now()
	for _, h := range f.Hosts {
		cert := readPEMCert(t, filepath.Join(dir, HostCertFile(h.Name)))
		if life := cert.NotAfter.Sub(now); life < HostLifetime-time.Hour || life > HostLifetime {
			t.Errorf("%s: valid for %v more", h.Name, life)
		}
		for _, name := range []string{h.Address, h.Name, "localhost", "127.0.0.1"} {
			for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
				opts := x509.VerifyOptions{DNSName: name, Roots: caPool(t, dir), KeyUsages: []x509.ExtKeyUsage{usage}}
				if _, err := cert.Verify(opts); err != nil {
					t.Errorf("%s as %s (usage %v): %v", h.Name, name, usage, err)
				}
			}
			other := x509.VerifyOptions{DNSName: name, Roots: caPool(t, otherDir)}
			var unknown x509.UnknownAuthorityError
			if _, err := cert.Verify(other); !errors.As(err, &unknown) {
				t.Errorf("%s verified against another cluster's CA: %v", h.Name, err)
			}
		}
		if _, err := cert.Verify(x509.VerifyOptions{DNSName: "elsewhere.example.com", Roots: caPool(t, dir)}); err == nil {
			t.Errorf("%s verified for a name it does not hold", h.Name)
		}
		pair, err := tls.LoadX509KeyPair(filepath.Join(dir, HostCertFile(h.Name)), filepath.Join(dir, HostKeyFile(h.Name)))
		if err != nil || pair.Leaf == nil {
			t.Errorf("%s: key pair: %v", h.Name, err)
		}
	}
}

// handshake runs a mutual-TLS handshake between a server with the
// certificate of host server in serverDir and a client with the
// certificate of host client in clientDir, both trusting only the CA of
// trustDir, and returns the server's error.
func handshake(t *testing.T, serverDir, clientDir, trustDir, server, client string) error {
	t.Helper()
	load := func(dir, host string) tls.Certificate {
		c, err := tls.LoadX509KeyPair(filepath.Join(dir, HostCertFile(host)), filepath.Join(dir, HostKeyFile(host)))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	pool := caPool(t, trustDir)
	sc, cc := net.Pipe()
	defer sc.Close()
	defer cc.Close()
	srv := tls.Server(sc, &tls.Config{Certificates: []tls.Certificate{load(serverDir, server)},
		ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool, MinVersion: tls.VersionTLS13})
	cli := tls.Client(cc, &tls.Config{Certificates: []tls.Certificate{load(clientDir, client)},
		RootCAs: pool, ServerName: server, MinVersion: tls.VersionTLS13})
	done := make(chan error, 1)
	go func() {
		err := cli.Handshake()
		if err == nil {
			// The server checks the client's certificate after the
			// client's part is done: read its verdict.
			_, err = cli.Read(make([]byte, 1))
		}
		cc.Close()
		done <- err
	}()
	err := srv.Handshake()
	if err == nil {
		srv.Write([]byte{1})
	}
	sc.Close()
	<-done
	return err
}

func TestMutualTLS(t *testing.T) {
	_, dir := initSecrets(t)
	_, otherDir := initSecrets(t)
	if err := handshake(t, dir, dir, dir, "node1", "node2"); err != nil {
		t.Errorf("node2 to node1, one CA: %v", err)
	}
	if err := handshake(t, dir, otherDir, dir, "node1", "node2"); err == nil {
		t.Error("a client certificate from another CA was accepted")
	}
}

func TestSeeds(t *testing.T) {
	f, dir := initSecrets(t)
	conf, err := os.ReadFile(filepath.Join(dir, NATSUsersFile))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	seeds := []string{OperatorSeedFile}
	for _, p := range f.Processes() {
		if p.Kind != KindNATS {
			seeds = append(seeds, SeedFile(p.ID))
		}
	}
	for _, file := range seeds {
		p := Process{ID: strings.TrimSuffix(file, ".nk")}
		seed, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil {
			t.Fatal(err)
		}
		kp, err := nkeys.FromSeed(bytes.TrimSpace(seed))
		if err != nil {
			t.Fatalf("%s: %v", p.ID, err)
		}
		pub, err := kp.PublicKey()
		if err != nil || !nkeys.IsValidPublicUserKey(pub) {
			t.Fatalf("%s: public key %q, %v", p.ID, pub, err)
		}
		if seen[pub] {
			t.Errorf("%s: public key used twice", p.ID)
		}
		seen[pub] = true
		if !bytes.Contains(conf, []byte(`nkey: "`+pub+`"`)) {
			t.Errorf("%s: %s not in %s", p.ID, pub, NATSUsersFile)
		}
		sig, err := kp.Sign([]byte("nonce"))
		if err != nil {
			t.Fatal(err)
		}
		verifier, _ := nkeys.FromPublicKey(pub)
		if err := verifier.Verify([]byte("nonce"), sig); err != nil {
			t.Errorf("%s: signature does not verify: %v", p.ID, err)
		}
		if err := verifier.Verify([]byte("other"), sig); err == nil {
			t.Errorf("%s: signature verifies for other data", p.ID)
		}
	}
}

func TestTokenFiles(t *testing.T) {
	_, dir := initSecrets(t)
	tokens, err := auth.LoadTokens(filepath.Join(dir, TokensFile))
	if err != nil {
		t.Fatal(err)
	}
	if tokens.Len() != len(auth.Roles) {
		t.Errorf("%d tokens, want %d", tokens.Len(), len(auth.Roles))
	}
	for _, r := range auth.Roles {
		b, err := os.ReadFile(filepath.Join(dir, TokenFile(r)))
		if err != nil {
			t.Fatal(err)
		}
		tok := strings.TrimSpace(string(b))
		info, err := tokens.Lookup(tok, r)
		if err != nil || info.Role != r {
			t.Errorf("%s token: %+v, %v", r, info, err)
		}
	}
}

func TestInitRefusesToOverwrite(t *testing.T) {
	f, dir := initSecrets(t)
	caBefore, _ := os.ReadFile(filepath.Join(dir, CACertFile))
	_, err := Init(f, dir, InitOptions{})
	if !errors.Is(err, ErrSecretsExist) || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("second Init: %v, want ErrSecretsExist mentioning --force", err)
	}
	caAfter, _ := os.ReadFile(filepath.Join(dir, CACertFile))
	if !bytes.Equal(caBefore, caAfter) {
		t.Fatal("the refused Init changed ca.crt")
	}
	if _, err := Init(f, dir, InitOptions{Force: true}); err != nil {
		t.Fatalf("Init --force: %v", err)
	}
	caForced, _ := os.ReadFile(filepath.Join(dir, CACertFile))
	if bytes.Equal(caBefore, caForced) {
		t.Error("Init --force kept the old CA")
	}
	if got, want := listDir(t, dir), wantFiles(f); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("after --force:\n%v\nwant\n%v", got, want)
	}
}

func TestInitIntoExistingDir(t *testing.T) {
	f := loadTestdata(t)
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("mine"), 0o600)
	if _, err := Init(f, dir, InitOptions{}); err != nil {
		t.Fatal(err)
	}
	want := append(wantFiles(f), "notes.txt")
	sort.Strings(want)
	if got := listDir(t, dir); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("files:\n%v\nwant\n%v", got, want)
	}
}

func TestInitUnusableDir(t *testing.T) {
	f := loadTestdata(t)
	base := t.TempDir()
	open := filepath.Join(base, "open")
	os.Mkdir(open, 0o755)
	os.Chmod(open, 0o755)
	file := filepath.Join(base, "file")
	os.WriteFile(file, nil, 0o600)
	for _, c := range []struct{ name, dir, want string }{
		{"readable by others", open, "mode 0755, open to other users; chmod 700"},
		{"a file", file, "is not a directory"},
		{"no parent", filepath.Join(base, "missing", "secrets"), "the parent directory"},
	} {
		_, err := Init(f, c.dir, InitOptions{})
		if !errors.Is(err, ErrSecretsDir) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want ErrSecretsDir saying %q", c.name, err, c.want)
		}
	}
	if got := listDir(t, open); len(got) != 0 {
		t.Errorf("left in the refused directory: %v", got)
	}
}

// failAt makes the file system step named step fail during the test.
func failAt(t *testing.T, step string) {
	t.Helper()
	failpoint = func(s string) error {
		if s == step {
			return errors.New("injected failure")
		}
		return nil
	}
	t.Cleanup(func() { failpoint = nil })
}

func TestInitFailureLeavesNothing(t *testing.T) {
	f := loadTestdata(t)
	for _, c := range []struct {
		name     string
		existing bool   // write into an existing empty directory
		step     string // the step that fails
	}{
		{"new dir, a write fails", false, "write " + HostKeyFile("node2")},
		{"new dir, the last write fails", false, "write " + TokensFile},
		{"new dir, a rename inside fails", false, "rename " + SeedFile("node1-worker-1")},
		{"new dir, its rename fails", false, "rename DIR"},
		{"existing dir, a write fails", true, "write " + NATSUsersFile},
		{"existing dir, the first rename fails", true, "rename " + CACertFile},
	} {
		t.Run(c.name, func(t *testing.T) {
			base := t.TempDir()
			dir := filepath.Join(base, "secrets")
			if c.existing {
				if err := os.Mkdir(dir, 0o700); err != nil {
					t.Fatal(err)
				}
			}
			failAt(t, strings.Replace(c.step, "DIR", dir, 1))
			if _, err := Init(f, dir, InitOptions{}); err == nil || !strings.Contains(err.Error(), "injected failure") {
				t.Fatalf("Init: %v, want the injected failure", err)
			}
			want := "[]"
			if c.existing {
				want = "[secrets]"
				if got := listDir(t, dir); len(got) != 0 {
					t.Errorf("left in the secrets directory: %v", got)
				}
			}
			if got := listDir(t, base); fmt.Sprint(got) != want {
				t.Errorf("left beside it: %v, want %s", got, want)
			}
		})
	}
}

func TestInitUnwritableDir(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root writes to read-only directories")
	}
	f := loadTestdata(t)
	base := t.TempDir()
	if err := os.Chmod(base, 0o500); err != nil {
		t.Fatal(err)
	}
	defer os.Chmod(base, 0o700)
	if _, err := Init(f, filepath.Join(base, "secrets"), InitOptions{}); err == nil {
		t.Fatal("Init in a read-only directory succeeded")
	}
	if got := listDir(t, base); len(got) != 0 {
		t.Errorf("left behind: %v", got)
	}
}

func TestSummaryPrint(t *testing.T) {
	f := loadTestdata(t)
	dir := filepath.Join(t.TempDir(), "s")
	s, err := Init(f, dir, InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := s.Print(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`Secrets of cluster "test-lab" written to ` + dir, "ca.key", "node3-worker-2.nk", "admin.token", "API token with the admin role"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("summary does not say %q:\n%s", want, b.String())
		}
	}
}

func TestDefaultSecretsDir(t *testing.T) {
	f := &File{Name: "lab"}
	if got := DefaultSecretsDir(f); got != "lab-secrets" {
		t.Errorf("DefaultSecretsDir = %q", got)
	}
	f.SecretsDir = "/etc/maas/lab"
	if got := DefaultSecretsDir(f); got != "/etc/maas/lab" {
		t.Errorf("DefaultSecretsDir = %q", got)
	}
}
