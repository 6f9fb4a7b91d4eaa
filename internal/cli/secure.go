package cli

import (
	"crypto/tls"
	"fmt"
	"os"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/spf13/pflag"

	"github.com/maas-ml/maas/deploy/cluster"
	"github.com/maas-ml/maas/internal/auth"
	"github.com/maas-ml/maas/internal/natsconn"
)

// natsCreds are the flags that give a role its NATS credentials, from the
// files of `maas cluster init`: its user's nkey seed, the CA of the NATS
// servers' certificates and, for servers that want one, a client
// certificate. Without them the role connects plain and anonymous.
type natsCreds struct {
	seed, ca, cert, key string
}

func (c *natsCreds) addFlags(fs *pflag.FlagSet) {
	fs.StringVar(&c.seed, "nats-seed", "", "NATS user nkey seed file of this process (<id>.nk from `maas cluster init`)")
	fs.StringVar(&c.ca, "nats-ca", "", "connect to NATS over TLS, trusting the servers this CA signed (ca.crt)")
	fs.StringVar(&c.cert, "nats-cert", "", "client certificate for NATS servers that ask for one (host-<name>.crt; with --nats-ca)")
	fs.StringVar(&c.key, "nats-key", "", "key of --nats-cert (host-<name>.key)")
}

// connOptions are the connection options of the credentials; none when
// no flag was given.
func (c *natsCreds) connOptions() (natsconn.Options, error) {
	opts, err := c.options()
	if err != nil {
		return natsconn.Options{}, err
	}
	return natsconn.Options{Credentials: opts, Seed: c.seed, CA: c.ca, Cert: c.cert}, nil
}

// options are the nats.Connect options of the credentials; none when no
// flag was given.
func (c *natsCreds) options() ([]nats.Option, error) {
	var opts []nats.Option
	if c.seed != "" {
		o, err := nats.NkeyOptionFromSeed(c.seed)
		if err != nil {
			return nil, fmt.Errorf("--nats-seed %s: %w; give this process's <id>.nk from `maas cluster init`", c.seed, err)
		}
		opts = append(opts, o)
	}
	if c.ca != "" || c.cert != "" || c.key != "" {
		if c.ca == "" {
			return nil, fmt.Errorf("--nats-cert and --nats-key need --nats-ca, the CA of the NATS servers (ca.crt)")
		}
		tc, err := cluster.ClientTLS(c.ca, c.cert, c.key)
		if err != nil {
			return nil, fmt.Errorf("--nats-ca/--nats-cert/--nats-key: %w", err)
		}
		opts = append(opts, nats.Secure(tc))
	}
	return opts, nil
}

// serverTLSFlags are the flags that make a role's HTTP endpoint speak
// HTTPS: a host's certificate and key and, for mutual TLS, the CA whose
// certificates clients must present.
type serverTLSFlags struct {
	cert, key, clientCA string
}

func (f *serverTLSFlags) addFlags(fs *pflag.FlagSet, what string) {
	fs.StringVar(&f.cert, "tls-cert", "", "serve "+what+" over HTTPS with this certificate (host-<name>.crt from `maas cluster init`)")
	fs.StringVar(&f.key, "tls-key", "", "key of --tls-cert (host-<name>.key)")
	fs.StringVar(&f.clientCA, "client-ca", "", "require client certificates signed by this CA (ca.crt): mutual TLS; needs --tls-cert")
}

// config is the TLS configuration of the flags; nil when none was given.
func (f *serverTLSFlags) config() (*tls.Config, error) {
	if f.cert == "" && f.key == "" && f.clientCA == "" {
		return nil, nil
	}
	c, err := cluster.ServerTLS(f.cert, f.key, f.clientCA)
	if err != nil {
		return nil, fmt.Errorf("--tls-cert/--tls-key/--client-ca: %w", err)
	}
	return c, nil
}

// loadTokens reads the tokens.json of --tokens; nil when not given.
func loadTokens(path string) (*auth.Tokens, error) {
	if path == "" {
		return nil, nil
	}
	tk, err := auth.LoadTokens(path)
	if err != nil {
		return nil, fmt.Errorf("--tokens: %w", err)
	}
	if tk.Len() == 0 {
		return nil, fmt.Errorf("--tokens %s holds no token: give the tokens.json of `maas cluster init`", path)
	}
	return tk, nil
}

// readTokenFile reads one API token (admin.token, submit.token,
// read.token from `maas cluster init`): the file's first line.
func readTokenFile(flag, path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("%s: %w", flag, err)
	}
	tok, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	tok = strings.TrimSpace(tok)
	if tok == "" {
		return "", fmt.Errorf("%s %s is empty: give a token file of `maas cluster init` (admin.token, submit.token or read.token)", flag, path)
	}
	return tok, nil
}
