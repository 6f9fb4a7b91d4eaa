package cluster

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"
)

// newSigner makes a fresh ed25519 SSH key.
func newSigner(t *testing.T) (ssh.Signer, ed25519.PrivateKey) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s, priv
}

// fakeSSHServer is an in-process SSH server on 127.0.0.1 (a fake, not
// OpenSSH): it accepts the client key given and answers every exec
// request with "ran: <command>" and exit status 0.
func fakeSSHServer(t *testing.T, hostKey ssh.Signer, client ssh.PublicKey) string {
	t.Helper()
	cfg := &ssh.ServerConfig{PublicKeyCallback: func(_ ssh.ConnMetadata, k ssh.PublicKey) (*ssh.Permissions, error) {
		if string(k.Marshal()) == string(client.Marshal()) {
			return nil, nil
		}
		return nil, errors.New("unknown key")
	}}
	cfg.AddHostKey(hostKey)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				_, chans, reqs, err := ssh.NewServerConn(c, cfg)
				if err != nil {
					return
				}
				go ssh.DiscardRequests(reqs)
				for nc := range chans {
					ch, creqs, err := nc.Accept()
					if err != nil {
						return
					}
					for r := range creqs {
						if r.Type != "exec" {
							r.Reply(false, nil)
							continue
						}
						r.Reply(true, nil)
						cmd := string(r.Payload[4:])
						ch.Write([]byte("ran: " + cmd))
						status := make([]byte, 4)
						binary.BigEndian.PutUint32(status, 0)
						ch.SendRequest("exit-status", false, status)
						ch.Close()
						break
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// sshFixture is a cluster file for one host at the fake server, with a
// client key file and a known_hosts file holding known.
func sshFixture(t *testing.T, addr string, clientKey ed25519.PrivateKey, known []ssh.PublicKey) *File {
	t.Helper()
	dir := t.TempDir()
	block, err := ssh.MarshalPrivateKey(clientKey, "")
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "id")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, k := range known {
		lines = append(lines, knownhosts.Line([]string{knownhosts.Normalize(addr)}, k))
	}
	khFile := filepath.Join(dir, "known_hosts")
	if err := os.WriteFile(khFile, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	return &File{
		Name:  "t",
		SSH:   SSH{User: "maas", Key: keyFile, KnownHosts: khFile, Port: p},
		Hosts: []Host{{Name: "node1", Address: host, Roles: []Kind{KindWorker}}},
	}
}

func TestSSHHostKeys(t *testing.T) {
	hostKey, _ := newSigner(t)
	otherKey, _ := newSigner(t)
	clientSigner, clientKey := newSigner(t)
	addr := fakeSSHServer(t, hostKey, clientSigner.PublicKey())
	for _, c := range []struct {
		name  string
		known []ssh.PublicKey
		want  error
	}{
		{"unknown", nil, ErrUnknownHostKey},
		{"mismatch", []ssh.PublicKey{otherKey.PublicKey()}, ErrHostKeyMismatch},
		{"known", []ssh.PublicKey{hostKey.PublicKey()}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := sshFixture(t, addr, clientKey, c.known)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			conn, err := dialHost(ctx, f, &f.Hosts[0])
			if c.want != nil {
				if !errors.Is(err, c.want) {
					t.Fatalf("dial: %v, want %v", err, c.want)
				}
				for _, s := range []string{"node1", addr, f.SSH.KnownHosts, ssh.FingerprintSHA256(hostKey.PublicKey())} {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error does not name %s: %v", s, err)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			out, err := conn.run(ctx, "uname -sm", nil)
			if err != nil || string(out) != "ran: uname -sm" {
				t.Fatalf("run: %q, %v", out, err)
			}
		})
	}
}

func TestSSHNoAuth(t *testing.T) {
	f := &File{Name: "t", SSH: SSH{User: "maas", KnownHosts: "/nonexistent", Port: 22},
		Hosts: []Host{{Name: "node1", Address: "127.0.0.1"}}}
	_, err := dialHost(context.Background(), f, &f.Hosts[0])
	if !errors.Is(err, ErrSSH) || !strings.Contains(err.Error(), "node1") {
		t.Fatalf("dial without key or agent: %v", err)
	}
}

func TestSSHAgent(t *testing.T) {
	hostKey, _ := newSigner(t)
	clientSigner, clientKey := newSigner(t)
	addr := fakeSSHServer(t, hostKey, clientSigner.PublicKey())
	keyring := agent.NewKeyring()
	if err := keyring.Add(agent.AddedKey{PrivateKey: clientKey}); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "agent.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = agent.ServeAgent(keyring, c)
			c.Close()
		}
	}()
	t.Setenv("SSH_AUTH_SOCK", sock)
	f := sshFixture(t, addr, clientKey, []ssh.PublicKey{hostKey.PublicKey()})
	f.SSH.Key, f.SSH.Agent = "", true
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := dialHost(ctx, f, &f.Hosts[0])
	if err != nil {
		t.Fatalf("dial with the agent's key: %v", err)
	}
	conn.Close()
}
