package cluster

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nkeys"

	"github.com/maas-ml/maas/internal/auth"
)

// Names of the files in a secrets directory.
const (
	CACertFile    = "ca.crt"          // the CA's certificate (PEM)
	CAKeyFile     = "ca.key"          // the CA's private key (PEM, PKCS #8)
	NATSUsersFile = "nats-users.conf" // the NATS servers' authorization block
	TokensFile    = "tokens.json"     // the API tokens' hashes, names and roles
)

// HostCertFile is the name of host's TLS certificate (PEM).
func HostCertFile(host string) string { return "host-" + host + ".crt" }

// HostKeyFile is the name of host's TLS private key (PEM, PKCS #8).
func HostKeyFile(host string) string { return "host-" + host + ".key" }

// SeedFile is the name of the NATS user nkey seed of process id.
func SeedFile(id string) string { return id + ".nk" }

// TokenFile is the name of the file holding the plaintext API token of
// role r.
func TokenFile(r auth.Role) string { return string(r) + ".token" }

// DefaultSecretsDir is where Init writes the secrets of f when not told:
// f.SecretsDir, else <name>-secrets in the current directory.
func DefaultSecretsDir(f *File) string {
	if f.SecretsDir != "" {
		return f.SecretsDir
	}
	return f.Name + "-secrets"
}

// InitOptions tune Init.
type InitOptions struct {
	// Force replaces the files of an earlier Init in the directory.
	Force bool
}

// Summary says what Init wrote.
type Summary struct {
	Cluster string
	Dir     string
	Files   []WrittenFile
}

// WrittenFile is one file Init wrote, by name in Summary.Dir.
type WrittenFile struct {
	Name  string
	About string
}

// secret is a file to write.
type secret struct {
	name, about string
	data        []byte
}

// Init makes the secrets of cluster f and writes them to dir: the CA's
// certificate and key, a certificate and key per host, a NATS user seed
// per process and one for the operator (operator.nk, who pushes
// datasets) with nats-users.conf (the users' public keys and
// permissions), and one API token per role with tokens.json (their
// hashes). dir ends up mode 0700 and every file 0600.
//
// Every secret is made before the first file is written. Each file is
// written to a temporary file in the same directory and renamed into
// place, so none is ever half-written. When dir does not exist, it is
// built under a temporary name beside it and renamed whole; when it does,
// Init refuses (ErrSecretsExist) to replace the files of an earlier Init
// unless opts.Force. On an error before the renames nothing is left.
func Init(f *File, dir string, opts InitOptions) (*Summary, error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	files, err := makeSecrets(f, time.Now())
	if err != nil {
		return nil, err
	}
	if err := writeSecrets(dir, files, opts.Force); err != nil {
		return nil, err
	}
	s := &Summary{Cluster: f.Name, Dir: dir}
	for _, sf := range files {
		s.Files = append(s.Files, WrittenFile{Name: sf.name, About: sf.about})
	}
	return s, nil
}

// makeSecrets makes every secret of cluster f in memory.
func makeSecrets(f *File, now time.Time) ([]secret, error) {
	ca, err := newAuthority(f.Name, now)
	if err != nil {
		return nil, err
	}
	caKey, err := ca.keyPEM()
	if err != nil {
		return nil, err
	}
	day := func(t time.Time) string { return t.UTC().Format(time.DateOnly) }
	files := []secret{
		{CACertFile, fmt.Sprintf("certificate authority %q, valid until %s", ca.cert.Subject.CommonName, day(ca.cert.NotAfter)), ca.certPEM()},
		{CAKeyFile, "the CA's private key: keep it off the hosts", caKey},
	}
	for i := range f.Hosts {
		h := &f.Hosts[i]
		cert, key, err := ca.hostCertificate(h, now)
		if err != nil {
			return nil, err
		}
		files = append(files,
			secret{HostCertFile(h.Name), fmt.Sprintf("TLS certificate of %s (%s), valid until %s", h.Name, h.Address, day(now.Add(HostLifetime))), cert},
			secret{HostKeyFile(h.Name), "TLS private key of " + h.Name, key})
	}

	var users []natsUser
	for _, p := range f.Processes() {
		perms, ok := f.userPermissions(p)
		if !ok {
			continue
		}
		seed, public, err := newUserKey()
		if err != nil {
			return nil, fmt.Errorf("cluster: NATS key of %s: %w", p.ID, err)
		}
		users = append(users, natsUser{Process: p, PublicKey: public, Perms: perms})
		files = append(files, secret{SeedFile(p.ID), fmt.Sprintf("NATS user seed of %s (%s)", p.ID, p.Kind), seed})
	}
	seed, public, err := newUserKey()
	if err != nil {
		return nil, fmt.Errorf("cluster: NATS key of the operator: %w", err)
	}
	users = append(users, natsUser{PublicKey: public, Operator: true})
	files = append(files, secret{OperatorSeedFile, "NATS user seed of the operator, for maas data push/ls/rm (--nats-seed): keep it off the hosts", seed})
	var conf bytes.Buffer
	if err := writeNATSUsers(&conf, f.Name, users); err != nil {
		return nil, err
	}
	files = append(files, secret{NATSUsersFile, fmt.Sprintf("NATS authorization: %d users and their permissions", len(users)), conf.Bytes()})

	var tokens auth.Tokens
	for _, r := range auth.Roles {
		tok, err := auth.NewToken()
		if err != nil {
			return nil, err
		}
		tokens.Add(tok, auth.Token{Name: string(r), Role: r})
		files = append(files, secret{TokenFile(r), fmt.Sprintf("API token with the %s role (shown nowhere else)", r), []byte(tok + "\n")})
	}
	tj, err := tokens.MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("cluster: tokens: %w", err)
	}
	files = append(files, secret{TokensFile, "API token hashes and roles, for the coordinators", append(tj, '\n')})
	return files, nil
}

// newUserKey makes a NATS user nkey and returns its seed (the file's
// contents) and public key.
func newUserKey() (seed []byte, public string, err error) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		return nil, "", err
	}
	defer kp.Wipe()
	s, err := kp.Seed()
	if err != nil {
		return nil, "", err
	}
	public, err = kp.PublicKey()
	if err != nil {
		return nil, "", err
	}
	return append(s, '\n'), public, nil
}

// failpoint, when set by a test, is called before each file system step
// of writeSecrets ("write NAME", "rename NAME") and fails it by returning
// an error.
var failpoint func(step string) error

func step(what string) error {
	if failpoint != nil {
		return failpoint(what)
	}
	return nil
}

// writeSecrets writes files to dir (see Init).
func writeSecrets(dir string, files []secret, force bool) error {
	dir = filepath.Clean(dir)
	info, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return writeNewDir(dir, files)
	case err != nil:
		return fmt.Errorf("%w: %v", ErrSecretsDir, err)
	case !info.IsDir():
		return fmt.Errorf("%w: %s is not a directory", ErrSecretsDir, dir)
	case info.Mode().Perm()&0o077 != 0:
		return fmt.Errorf("%w: %s is mode %04o, open to other users; chmod 700 it or choose another directory",
			ErrSecretsDir, dir, info.Mode().Perm())
	}
	var existing []string
	for _, f := range files {
		if _, err := os.Lstat(filepath.Join(dir, f.name)); err == nil {
			existing = append(existing, f.name)
		}
	}
	if len(existing) > 0 && !force {
		return fmt.Errorf("%w in %s (%s); use --force to replace them (the cluster's running processes keep the old ones until relaunched)",
			ErrSecretsExist, dir, abbreviate(existing, 4))
	}
	return writeInto(dir, files, true)
}

// writeNewDir builds dir under a temporary name beside it and renames it
// into place, or removes it on an error.
func writeNewDir(dir string, files []secret) (err error) {
	parent := filepath.Dir(dir)
	if info, err := os.Stat(parent); err != nil || !info.IsDir() {
		return fmt.Errorf("%w: the parent directory of %s does not exist; create it first", ErrSecretsDir, dir)
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dir)+".tmp-")
	if err != nil {
		return fmt.Errorf("%w: %v", ErrSecretsDir, err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
		}
	}()
	if err := os.Chmod(tmp, 0o700); err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	if err := writeInto(tmp, files, false); err != nil {
		return err
	}
	if err := step("rename " + dir); err != nil {
		return err
	}
	if err := os.Rename(tmp, dir); err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	return syncDir(parent)
}

// writeInto writes every file to a temporary file in dir, then renames
// them all into place. An error while writing removes the temporary files
// and leaves dir as it was. inPlace says dir is the user's directory
// rather than a temporary one.
func writeInto(dir string, files []secret, inPlace bool) error {
	temps := make([]string, 0, len(files))
	removeTemps := func() {
		for _, t := range temps {
			os.Remove(t)
		}
	}
	for _, f := range files {
		t, err := writeTemp(dir, f)
		if t != "" {
			temps = append(temps, t)
		}
		if err != nil {
			removeTemps()
			return fmt.Errorf("cluster: write %s: %w", filepath.Join(dir, f.name), err)
		}
	}
	for i, f := range files {
		err := step("rename " + f.name)
		if err == nil {
			err = os.Rename(temps[i], filepath.Join(dir, f.name))
		}
		if err != nil {
			temps = temps[i:]
			removeTemps()
			if i == 0 || !inPlace {
				return fmt.Errorf("cluster: write %s: %w", filepath.Join(dir, f.name), err)
			}
			return fmt.Errorf("cluster: write %s: %w (the files before it were replaced; run again with --force)", filepath.Join(dir, f.name), err)
		}
	}
	return syncDir(dir)
}

// writeTemp writes f to a new temporary file (mode 0600) in dir and
// returns its path, also on an error once it exists.
func writeTemp(dir string, f secret) (string, error) {
	if err := step("write " + f.name); err != nil {
		return "", err
	}
	t, err := os.CreateTemp(dir, "."+f.name+".tmp-")
	if err != nil {
		return "", err
	}
	_, err = t.Write(f.data)
	if err == nil {
		err = t.Chmod(0o600)
	}
	if err == nil {
		err = t.Sync()
	}
	if cerr := t.Close(); err == nil {
		err = cerr
	}
	return t.Name(), err
}

// syncDir flushes a directory's entries (the renames) to disk.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("cluster: sync %s: %w", dir, err)
	}
	return nil
}

// abbreviate lists the first n names and how many more there are.
func abbreviate(names []string, n int) string {
	if len(names) <= n {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(names[:n], ", "), len(names)-n)
}

// Print writes the summary for a person: each file and what it is, and
// what to do next.
func (s *Summary) Print(w io.Writer) error {
	fmt.Fprintf(w, "Secrets of cluster %q written to %s (directory 0700, files 0600):\n", s.Cluster, s.Dir)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, f := range s.Files {
		fmt.Fprintf(tw, "  %s\t%s\n", f.Name, f.About)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "Keep the directory private: anyone with it can join the cluster or use its API.\n"+
		"The *.token files are the only copies of the API tokens; hand them to the people who need them.\n")
	return err
}
