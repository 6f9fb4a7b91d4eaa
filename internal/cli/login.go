package cli

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/maas-ml/maas/deploy/cluster"
	"github.com/maas-ml/maas/internal/api"
)

// loginCmd is `maas login`: it records a coordinator and the credentials
// for it as a context of the CLI's config file and makes it current.
func loginCmd() *cobra.Command {
	var server, caFile, tokenFile, certFile, keyFile, name string
	var noCheck bool
	cmd := &cobra.Command{
		Use:   "login --server URL [--ca ca.crt] [--token-file TOKEN] [--name NAME]",
		Short: "Save a coordinator's address, CA and API token as the current context",
		Long: `login saves a context — a coordinator's address, the CA its certificate is checked
against and the API token to send — to $MAAS_CONFIG (default ~/.config/maas/config.yaml,
mode 0600) and makes it the current one: job, model and cluster commands then go
there without --server. With --server, they use the context of that server, if any.

The CA and tokens are files of ` + "`maas cluster init`" + `: ca.crt, and admin.token,
submit.token or read.token. Logging in again to a server keeps its CA and client
certificate unless new ones are given. login first checks that the coordinator
answers with them (--no-check saves without asking it).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path, err := configPath()
			if err != nil {
				return err
			}
			cfg, err := loadConfig(path)
			if err != nil {
				return err
			}
			ctx, err := newLoginContext(server, caFile, tokenFile, certFile, keyFile, name, cfg.forServer(server))
			if err != nil {
				return err
			}
			if !noCheck {
				if err := checkLogin(cmd, ctx); err != nil {
					return err
				}
			}
			cfg.set(*ctx)
			if err := cfg.save(path); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Context %q (%s) saved to %s and made current.\n", ctx.Name, ctx.Server, path)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&server, "server", "", "coordinator address, such as https://10.0.0.11:7070 (host:port: https with --ca, else http)")
	f.StringVar(&caFile, "ca", "", "the cluster's CA certificate (ca.crt): the coordinator's certificate must be signed by it")
	f.StringVar(&tokenFile, "token-file", "", "file holding the API token (admin.token, submit.token or read.token)")
	f.StringVar(&certFile, "cert", "", "client certificate, for a coordinator started with --client-ca (host-<name>.crt)")
	f.StringVar(&keyFile, "key", "", "key of --cert (host-<name>.key)")
	f.StringVar(&name, "name", "", "context name (default: the server's host:port)")
	f.BoolVar(&noCheck, "no-check", false, "save without checking that the coordinator accepts the credentials")
	cmd.MarkFlagRequired("server")
	return cmd
}

// newLoginContext reads the files of `maas login` into a context, checking
// each; prev, the context saved for the same server if any, lends its CA
// and client certificate when no new ones are given.
func newLoginContext(server, caFile, tokenFile, certFile, keyFile, name string, prev *cliContext) (*cliContext, error) {
	s := strings.TrimRight(strings.TrimSpace(server), "/")
	if s != "" && !strings.Contains(s, "://") {
		if prev != nil {
			s = strings.TrimRight(prev.Server, "/")
		} else if caFile != "" {
			s = "https://" + s
		} else {
			s = "http://" + s
		}
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--server %q: want https://HOST:PORT (or http://HOST:PORT), such as https://10.0.0.11:7070", server)
	}
	ctx := &cliContext{Name: name, Server: s}
	if prev != nil && prev.Server == s {
		ctx.CA, ctx.Cert, ctx.Key = prev.CA, prev.Cert, prev.Key
		if ctx.Name == "" {
			ctx.Name = prev.Name
		}
	}
	if ctx.Name == "" {
		ctx.Name = u.Host
	}
	if caFile != "" {
		b, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("--ca: %w", err)
		}
		if _, err := cluster.CertPool(b); err != nil {
			return nil, fmt.Errorf("--ca %s: %w", caFile, err)
		}
		ctx.CA = string(b)
	}
	if u.Scheme == "https" && ctx.CA == "" {
		// The system's roots do not sign a cluster's certificates.
		return nil, fmt.Errorf("--server %s is https: give the cluster's CA with --ca ca.crt (from `maas cluster init`)", s)
	}
	if tokenFile != "" {
		if ctx.Token, err = readTokenFile("--token-file", tokenFile); err != nil {
			return nil, err
		}
	}
	if certFile != "" || keyFile != "" {
		cert, err1 := os.ReadFile(certFile)
		key, err2 := os.ReadFile(keyFile)
		if err := errors.Join(err1, err2); err != nil {
			return nil, fmt.Errorf("--cert/--key: %w; give both", err)
		}
		if _, err := tls.X509KeyPair(cert, key); err != nil {
			return nil, fmt.Errorf("--cert %s, --key %s: %w", certFile, keyFile, err)
		}
		ctx.Cert, ctx.Key = string(cert), string(key)
	}
	return ctx, nil
}

// checkLogin asks the coordinator for the cluster's status (the read
// role) with the context's credentials.
func checkLogin(cmd *cobra.Command, ctx *cliContext) error {
	opts, err := ctx.options()
	if err != nil {
		return err
	}
	c, err := api.NewClient(ctx.Server, opts...)
	if err != nil {
		return fmt.Errorf("--server: %w", err)
	}
	if _, err := c.Cluster(cmd.Context()); err != nil {
		if errors.Is(err, api.ErrUnreachable) || errors.Is(err, api.ErrTimeout) {
			return fmt.Errorf("%w\nnothing saved; run again when the coordinator is up, or with --no-check to save anyway", err)
		}
		return fmt.Errorf("%w\nnothing saved", explain(err, ""))
	}
	return nil
}
