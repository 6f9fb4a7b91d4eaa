package cluster

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/user"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"
)

// DefaultSSHTimeout bounds an SSH connection's handshake and, unless the
// caller's context says less, one remote command.
const DefaultSSHTimeout = 30 * time.Second

// sshHost is an SSH connection to one host of the cluster.
type sshHost struct {
	host   *Host
	client *ssh.Client
}

// dialHost logs in to host h with the file's SSH settings, checking the
// host's key against the known_hosts file.
func dialHost(ctx context.Context, f *File, h *Host) (*sshHost, error) {
	s := f.SSHFor(h)
	addr := net.JoinHostPort(h.Address, strconv.Itoa(s.Port))
	cfg, done, err := clientConfig(s, h.Name, addr)
	if err != nil {
		return nil, err
	}
	defer done()
	ctx, cancel := context.WithTimeout(ctx, DefaultSSHTimeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%w: host %s: %w", ErrSSH, h.Name, err)
	}
	deadline, _ := ctx.Deadline()
	_ = conn.SetDeadline(deadline)
	c, chans, reqs, err := ssh.NewClientConn(conn, addr, cfg)
	if err != nil {
		conn.Close()
		var hk *hostKeyError
		if errors.As(err, &hk) {
			return nil, hk
		}
		return nil, fmt.Errorf("%w: host %s (%s as %s): %w", ErrSSH, h.Name, addr, cfg.User, err)
	}
	_ = conn.SetDeadline(time.Time{})
	return &sshHost{host: h, client: ssh.NewClient(c, chans, reqs)}, nil
}

// clientConfig is the x/crypto/ssh configuration for s: its user, its key
// file then the agent's keys, and the known_hosts check. Call done after
// the handshake: it closes the connection to the agent.
func clientConfig(s SSH, host, addr string) (cfg *ssh.ClientConfig, done func(), err error) {
	name := s.User
	if name == "" {
		u, err := user.Current()
		if err != nil {
			return nil, nil, fmt.Errorf("%w: host %s: no ssh user given and the current user is unknown: %w", ErrSSH, host, err)
		}
		name = u.Username
	}
	var auth []ssh.AuthMethod
	if s.Key != "" {
		path, err := expandHome(s.Key)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: host %s: %w", ErrSSH, host, err)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: host %s: ssh key: %w", ErrSSH, host, err)
		}
		signer, err := ssh.ParsePrivateKey(b)
		if err != nil {
			var pp *ssh.PassphraseMissingError
			if errors.As(err, &pp) {
				return nil, nil, fmt.Errorf("%w: host %s: ssh key %s has a passphrase; load it into ssh-agent and set ssh.agent: true", ErrSSH, host, path)
			}
			return nil, nil, fmt.Errorf("%w: host %s: ssh key %s: %w", ErrSSH, host, path, err)
		}
		auth = append(auth, ssh.PublicKeys(signer))
	}
	var agentConn net.Conn
	done = func() {
		if agentConn != nil {
			agentConn.Close()
		}
	}
	if s.Agent {
		sock := os.Getenv("SSH_AUTH_SOCK")
		if sock == "" {
			return nil, nil, fmt.Errorf("%w: host %s: ssh.agent is true but SSH_AUTH_SOCK is not set; start ssh-agent", ErrSSH, host)
		}
		auth = append(auth, ssh.PublicKeysCallback(func() ([]ssh.Signer, error) {
			if agentConn == nil {
				conn, err := net.Dial("unix", sock)
				if err != nil {
					return nil, fmt.Errorf("ssh agent at %s: %w", sock, err)
				}
				agentConn = conn
			}
			// The signers sign through the connection, which stays
			// open until done.
			return agent.NewClient(agentConn).Signers()
		}))
	}
	if len(auth) == 0 {
		return nil, nil, fmt.Errorf("%w: host %s: no ssh key and no agent; set ssh.key or ssh.agent", ErrSSH, host)
	}
	known, err := expandHome(s.KnownHosts)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: host %s: %w", ErrSSH, host, err)
	}
	check, err := knownhosts.New(known)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: host %s: known_hosts: %w", ErrSSH, host, err)
	}
	return &ssh.ClientConfig{
		User:              name,
		Auth:              auth,
		HostKeyCallback:   hostKeyCheck(check, host, known),
		HostKeyAlgorithms: knownAlgorithms(check, addr),
		Timeout:           DefaultSSHTimeout,
	}, done, nil
}

// hostKeyError is a host key that known_hosts does not vouch for.
type hostKeyError struct {
	host, addr, known string
	key               ssh.PublicKey
	mismatch          bool
}

func (e *hostKeyError) Error() string {
	fp := ssh.FingerprintSHA256(e.key)
	if e.mismatch {
		return fmt.Sprintf("%v: host %s (%s) presented %s key %s, which does not match its entry in %s; "+
			"if the host was reinstalled, check the new key and replace the entry, otherwise someone may be intercepting the connection",
			ErrHostKeyMismatch, e.host, e.addr, e.key.Type(), fp, e.known)
	}
	return fmt.Sprintf("%v: host %s (%s) presented %s key %s, which is not in %s; check the fingerprint on the host "+
		"(ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub) and add it (ssh-keyscan)",
		ErrUnknownHostKey, e.host, e.addr, e.key.Type(), fp, e.known)
}

func (e *hostKeyError) Unwrap() error {
	if e.mismatch {
		return ErrHostKeyMismatch
	}
	return ErrUnknownHostKey
}

// hostKeyCheck wraps the known_hosts callback so that its refusals name
// the host and the file.
func hostKeyCheck(check ssh.HostKeyCallback, host, known string) ssh.HostKeyCallback {
	return func(hostname string, remote net.Addr, key ssh.PublicKey) error {
		err := check(hostname, remote, key)
		var ke *knownhosts.KeyError
		if errors.As(err, &ke) {
			return &hostKeyError{host: host, addr: hostname, known: known, key: key, mismatch: len(ke.Want) > 0}
		}
		var re *knownhosts.RevokedError
		if errors.As(err, &re) {
			return fmt.Errorf("%w: host %s (%s): its key is revoked in %s", ErrHostKeyMismatch, host, hostname, known)
		}
		return err
	}
}

// knownAlgorithms lists the host key algorithms of the keys known_hosts
// holds for addr, so that the server presents one of those rather than
// another type the file does not hold (which would read as a mismatch).
// Nil (the library's default order) when the file knows none.
func knownAlgorithms(check ssh.HostKeyCallback, addr string) []string {
	// Asking with a key no file holds makes the callback list the known
	// ones.
	probe, err := ssh.NewPublicKey(ed25519.PublicKey(make([]byte, ed25519.PublicKeySize)))
	if err != nil {
		return nil
	}
	tcp := &net.TCPAddr{IP: net.IPv4zero}
	var ke *knownhosts.KeyError
	if !errors.As(check(addr, tcp, probe), &ke) {
		return nil
	}
	var algos []string
	seen := map[string]bool{}
	for _, k := range ke.Want {
		for _, a := range algorithmsFor(k.Key.Type()) {
			if !seen[a] {
				seen[a] = true
				algos = append(algos, a)
			}
		}
	}
	return algos
}

// algorithmsFor lists the signature algorithms of a key type: RSA keys
// sign with SHA-2 as well as SHA-1.
func algorithmsFor(keyType string) []string {
	if keyType == ssh.KeyAlgoRSA {
		return []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA}
	}
	return []string{keyType}
}

// expandHome replaces a leading ~ or ~/ of path by the home directory.
func expandHome(path string) (string, error) {
	if path != "~" && !strings.HasPrefix(path, "~/") {
		return path, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("expand %s: %w", path, err)
	}
	return filepath.Join(home, path[1:]), nil
}

// Close ends the connection.
func (c *sshHost) Close() error { return c.client.Close() }

// run runs the shell command cmd on the host, with stdin as its input
// (nil: none), and returns its standard output. A command that fails
// returns its standard error in the error. The command is cut off when ctx
// ends or after DefaultSSHTimeout, whichever comes first.
func (c *sshHost) run(ctx context.Context, cmd string, stdin io.Reader) ([]byte, error) {
	return c.runFor(ctx, DefaultSSHTimeout, cmd, stdin)
}

// runFor is run with a time limit of its own.
func (c *sshHost) runFor(ctx context.Context, limit time.Duration, cmd string, stdin io.Reader) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	s, err := c.client.NewSession()
	if err != nil {
		return nil, fmt.Errorf("%w: host %s: new session: %w", ErrSSH, c.host.Name, err)
	}
	defer s.Close()
	var stdout, stderr bytes.Buffer
	s.Stdout, s.Stderr, s.Stdin = &stdout, &stderr, stdin
	done := make(chan error, 1)
	go func() { done <- s.Run(cmd) }()
	select {
	case err = <-done:
	case <-ctx.Done():
		_ = s.Signal(ssh.SIGKILL)
		s.Close()
		return nil, fmt.Errorf("%w: host %s: %w", ErrSSH, c.host.Name, ctx.Err())
	}
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = strings.TrimSpace(stdout.String())
		}
		return stdout.Bytes(), fmt.Errorf("%w: host %s: %w: %s", ErrRemote, c.host.Name, err, msg)
	}
	return stdout.Bytes(), nil
}

// writeFile writes data to path on the host with mode, atomically: into a
// temporary file beside it, then renamed over it. It allows
// DefaultSSHTimeout plus a second per 256 KiB.
func (c *sshHost) writeFile(ctx context.Context, path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp-maas"
	cmd := fmt.Sprintf("umask 077 && mkdir -p %s && cat >%s && chmod %o %s && mv -f %s %s",
		shq(filepath.Dir(path)), shq(tmp), mode.Perm(), shq(tmp), shq(tmp), shq(path))
	limit := DefaultSSHTimeout + time.Duration(len(data)>>18)*time.Second
	if _, err := c.runFor(ctx, limit, cmd, bytes.NewReader(data)); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// remoteFile is a file for writeFiles: its path under the root, content
// and mode.
type remoteFile struct {
	Name string
	Data []byte
	Mode os.FileMode
}

// writeFiles writes files under the directory root on the host in one
// command: they are sent as a tar archive, unpacked into a temporary
// directory under root, and each renamed into place.
func (c *sshHost) writeFiles(ctx context.Context, root string, files []remoteFile) error {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	var script strings.Builder
	fmt.Fprintf(&script, "umask 077 && mkdir -p %s && T=$(mktemp -d %s) && tar -xf - -C \"$T\"", shq(root), shq(root+"/.maas-new.XXXXXX"))
	for _, f := range files {
		hdr := &tar.Header{Name: f.Name, Mode: int64(f.Mode.Perm()), Size: int64(len(f.Data)), Typeflag: tar.TypeReg}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if _, err := tw.Write(f.Data); err != nil {
			return err
		}
		dst := root + "/" + f.Name
		fmt.Fprintf(&script, " && mkdir -p %s && chmod %o \"$T\"/%s && mv -f \"$T\"/%s %s",
			shq(path.Dir(dst)), f.Mode.Perm(), shq(f.Name), shq(f.Name), shq(dst))
	}
	if err := tw.Close(); err != nil {
		return err
	}
	script.WriteString(" && rm -rf \"$T\"")
	limit := DefaultSSHTimeout + time.Duration(buf.Len()>>18)*time.Second
	if _, err := c.runFor(ctx, limit, script.String(), &buf); err != nil {
		return fmt.Errorf("write %d files under %s: %w", len(files), root, err)
	}
	return nil
}

// shq quotes s for a POSIX shell.
func shq(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
