package cli

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/maas-ml/maas/deploy/cluster"
	"github.com/maas-ml/maas/internal/api"
)

// ConfigEnv names the environment variable that overrides where the CLI
// keeps its contexts (default ~/.config/maas/config.yaml).
const ConfigEnv = "MAAS_CONFIG"

// errConfig: the context file cannot be used as it is.
var errConfig = errors.New("maas config")

// cliConfig is the CLI's context file, like a kubeconfig: the coordinators
// `maas login` was given, each with the CA its certificate is checked
// against and the API token to send, and the one remote commands use.
//
//	current: lab
//	contexts:
//	  - name: lab
//	    server: https://10.0.0.11:7070
//	    ca: |
//	      -----BEGIN CERTIFICATE-----
//	      ...
//	    token: 3q2-7w...
//
// It holds tokens, so it is written 0600 and refused when others can read
// it.
type cliConfig struct {
	Current  string       `yaml:"current,omitempty"`
	Contexts []cliContext `yaml:"contexts,omitempty"`
}

// cliContext is one coordinator and the credentials for it.
type cliContext struct {
	Name   string `yaml:"name"`
	Server string `yaml:"server"`
	// CA is the PEM of the CA the server's certificate must be signed by.
	CA string `yaml:"ca,omitempty"`
	// Token is the API token sent as "Authorization: Bearer TOKEN".
	Token string `yaml:"token,omitempty"`
	// Cert and Key are the PEM of a client certificate and its key, for a
	// coordinator that wants one (mutual TLS).
	Cert string `yaml:"cert,omitempty"`
	Key  string `yaml:"key,omitempty"`
}

// configPath is $MAAS_CONFIG, else $XDG_CONFIG_HOME/maas/config.yaml,
// else ~/.config/maas/config.yaml.
func configPath() (string, error) {
	if p := os.Getenv(ConfigEnv); p != "" {
		return p, nil
	}
	if x := os.Getenv("XDG_CONFIG_HOME"); x != "" {
		return filepath.Join(x, "maas", "config.yaml"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("%w: no home directory for the config file (%v); set %s", errConfig, err, ConfigEnv)
	}
	return filepath.Join(home, ".config", "maas", "config.yaml"), nil
}

// loadConfig reads the context file at path; a missing file is an empty
// config.
func loadConfig(path string) (*cliConfig, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &cliConfig{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errConfig, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errConfig, err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s is mode %04o, readable by other users, and it holds API tokens: chmod 600 %s",
			errConfig, path, st.Mode().Perm(), path)
	}
	var b bytes.Buffer
	if _, err := b.ReadFrom(f); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", errConfig, path, err)
	}
	var c cliConfig
	dec := yaml.NewDecoder(&b)
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: %s: %v; fix it or remove it and run `maas login` again", errConfig, path, err)
	}
	return &c, nil
}

// save writes c to path whole or not at all: to a 0600 temporary file in
// the same directory (made 0700 if new), then renamed over path.
func (c *cliConfig) save(path string) error {
	b, err := yaml.Marshal(c)
	if err != nil {
		return fmt.Errorf("%w: %v", errConfig, err)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("%w: %v", errConfig, err)
	}
	t, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-")
	if err != nil {
		return fmt.Errorf("%w: %v", errConfig, err)
	}
	_, err = t.Write(b)
	if err == nil {
		err = t.Chmod(0o600)
	}
	if err == nil {
		err = t.Sync()
	}
	if cerr := t.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(t.Name(), path)
	}
	if err != nil {
		os.Remove(t.Name())
		return fmt.Errorf("%w: write %s: %v", errConfig, path, err)
	}
	return nil
}

// context returns the context called name, or nil.
func (c *cliConfig) context(name string) *cliContext {
	for i := range c.Contexts {
		if c.Contexts[i].Name == name {
			return &c.Contexts[i]
		}
	}
	return nil
}

// set adds ctx, or replaces the context of its name, and makes it current.
func (c *cliConfig) set(ctx cliContext) {
	if old := c.context(ctx.Name); old != nil {
		*old = ctx
	} else {
		c.Contexts = append(c.Contexts, ctx)
	}
	c.Current = ctx.Name
}

// forServer returns the context for the coordinator at server, or nil: the
// same URL, or for a bare host:port, the same host and port.
func (c *cliConfig) forServer(server string) *cliContext {
	want := strings.TrimRight(strings.TrimSpace(server), "/")
	bare := !strings.Contains(want, "://")
	for i := range c.Contexts {
		have := strings.TrimRight(c.Contexts[i].Server, "/")
		if have == want {
			return &c.Contexts[i]
		}
		if u, err := url.Parse(have); bare && err == nil && u.Host == want {
			return &c.Contexts[i]
		}
	}
	return nil
}

// target is where a remote command goes: the coordinator's address and,
// from a context, the credentials for it.
type target struct {
	server string
	ctx    *cliContext
}

// resolveTarget picks the coordinator of a remote command. Given a server
// (--server or MAAS_SERVER; explicit), it goes there, with the
// credentials of a context for that same server if there is one; else to
// the current context's server with its credentials; else to server, the
// default, with none.
func resolveTarget(server string, explicit bool) (target, error) {
	path, err := configPath()
	if err != nil {
		return target{server: server}, nil // no home: no contexts
	}
	cfg, err := loadConfig(path)
	if err != nil {
		return target{}, err
	}
	if explicit {
		if c := cfg.forServer(server); c != nil {
			if !strings.Contains(server, "://") {
				server = c.Server // host:port names the context's scheme too
			}
			return target{server: server, ctx: c}, nil
		}
		return target{server: server}, nil
	}
	if cfg.Current == "" {
		return target{server: server}, nil
	}
	c := cfg.context(cfg.Current)
	if c == nil {
		return target{}, fmt.Errorf("%w: %s: the current context %q is not defined; run `maas login`", errConfig, path, cfg.Current)
	}
	return target{server: c.Server, ctx: c}, nil
}

// options are the API client options of the context's credentials.
func (c *cliContext) options() ([]api.Option, error) {
	if c == nil {
		return nil, nil
	}
	var opts []api.Option
	if c.Token != "" {
		opts = append(opts, api.WithToken(c.Token))
	}
	if c.CA != "" || c.Cert != "" {
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if c.CA != "" {
			pool, err := cluster.CertPool([]byte(c.CA))
			if err != nil {
				return nil, fmt.Errorf("%w: context %s: ca: %v; run `maas login --ca ca.crt` again", errConfig, c.Name, err)
			}
			tc.RootCAs = pool
		}
		if c.Cert != "" {
			cert, err := tls.X509KeyPair([]byte(c.Cert), []byte(c.Key))
			if err != nil {
				return nil, fmt.Errorf("%w: context %s: client certificate: %v; run `maas login --cert --key` again", errConfig, c.Name, err)
			}
			tc.Certificates = []tls.Certificate{cert}
		}
		opts = append(opts, api.WithTLSConfig(tc))
	}
	return opts, nil
}
