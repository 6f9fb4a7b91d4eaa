package netemu

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// SSHD is the OpenSSH server StartSSHD runs.
const SSHD = "/usr/sbin/sshd"

// SSHKeygen makes an ed25519 key pair without a passphrase at path (and
// path.pub).
func SSHKeygen(path string) error {
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "", "-f", path).CombinedOutput(); err != nil {
		return fmt.Errorf("netemu: ssh-keygen: %v: %s", err, out)
	}
	return nil
}

// StartSSHD runs an OpenSSH server in host i's namespace on port 22 of
// its address, with a new host key kept in dir and clientPub (an
// authorized_keys line) allowed to log in as root. It returns the host's
// public key line, for a known_hosts file, and a stop function.
func (nt *Net) StartSSHD(i int, dir string, clientPub []byte) (hostPub []byte, stop func(), err error) {
	if _, err := os.Stat(SSHD); err != nil {
		return nil, nil, fmt.Errorf("%w: no OpenSSH server at %s (apt-get install openssh-server)", ErrUnavailable, SSHD)
	}
	h := nt.Hosts[i]
	hostKey := filepath.Join(dir, "host_key")
	if err := SSHKeygen(hostKey); err != nil {
		return nil, nil, err
	}
	if hostPub, err = os.ReadFile(hostKey + ".pub"); err != nil {
		return nil, nil, err
	}
	authorized := filepath.Join(dir, "authorized_keys")
	if err := os.WriteFile(authorized, clientPub, 0o600); err != nil {
		return nil, nil, err
	}
	config := filepath.Join(dir, "sshd_config")
	conf := fmt.Sprintf(`Port 22
ListenAddress %s
HostKey %s
AuthorizedKeysFile %s
PidFile %s
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PrintMotd no
MaxStartups 100
MaxSessions 100
`, h.Addr, hostKey, authorized, filepath.Join(dir, "sshd.pid"))
	if err := os.WriteFile(config, []byte(conf), 0o600); err != nil {
		return nil, nil, err
	}
	// sshd insists on its privilege separation directory.
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		return nil, nil, err
	}
	var stderr bytes.Buffer
	cmd := nt.Command(i, SSHD, "-D", "-e", "-f", config)
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return nil, nil, fmt.Errorf("netemu: start sshd in %s: %w", h.NS, err)
	}
	stop = func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", net.JoinHostPort(h.Addr, "22"), time.Second)
		if err == nil {
			c.Close()
			return hostPub, stop, nil
		}
		if time.Now().After(deadline) {
			stop()
			return nil, nil, fmt.Errorf("netemu: sshd in %s does not listen on %s:22: %v\n%s", h.NS, h.Addr, err, stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
