package natsconn

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"
)

// Errors of Connect: the server refused the process.
var (
	// ErrCredentials: the server does not know the process's user (no
	// nkey seed, or one not in its authorization file).
	ErrCredentials = errors.New("natsconn: NATS refused the credentials")
	// ErrTLS: TLS with the server failed (the server wants TLS, or a
	// client certificate, or presented one this process does not trust;
	// or this process wants TLS and the server has none).
	ErrTLS = errors.New("natsconn: TLS with NATS failed")
)

// Options configure a connection.
type Options struct {
	// Name names the connection on the server (nats.Name).
	Name   string
	Logger *zap.Logger
	// Credentials are the options of the process's NATS credentials: its
	// nkey seed and TLS configuration, none for an open server.
	Credentials []nats.Option
	// Seed, CA and Cert are the files Credentials came from (--nats-seed,
	// --nats-ca, --nats-cert), named in errors; "" when not given.
	Seed, CA, Cert string
	// Metrics count the connection's permissions violations (nil:
	// Default()).
	Metrics *Metrics
	// ReconnectWait is the pause between reconnection attempts (default
	// 250 ms).
	ReconnectWait time.Duration
}

// Connect connects to the NATS server at url (or the first of a
// comma-separated list that answers, in order) and keeps reconnecting for
// ever. A server that cannot be reached yet is retried in the background
// (Connect returns a connection that is not connected yet); a server that
// refuses the process fails Connect with ErrCredentials or ErrTLS and an
// error that says which flag to give.
func Connect(url string, o Options) (*nats.Conn, error) {
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.Metrics == nil {
		o.Metrics = Default()
	}
	if o.ReconnectWait <= 0 {
		o.ReconnectWait = 250 * time.Millisecond
	}
	log := o.Logger
	opts := append(append([]nats.Option(nil), o.Credentials...),
		// The servers in the order given: a cluster's process lists its own
		// host's server first (cluster.File.NATSServersFor).
		nats.Name(o.Name), nats.DontRandomize(), nats.MaxReconnects(-1), nats.ReconnectWait(o.ReconnectWait),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("NATS disconnected", zap.Error(err))
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) { log.Info("NATS reconnected", zap.String("url", c.ConnectedUrl())) }),
		nats.ErrorHandler(o.Metrics.errorHandler(log)),
		nats.ClosedHandler(func(c *nats.Conn) {
			if err := c.LastError(); err != nil && !errors.Is(err, nats.ErrPermissionViolation) {
				log.Error("NATS connection closed", zap.Error(explain(err, c.Opts.Url, o)))
			}
		}))
	nc, err := nats.Connect(url, opts...)
	if err == nil {
		return nc, nil
	}
	if e := explain(err, url, o); e != err {
		return nil, e
	}
	// Not reachable (yet): a role may start before its NATS server, and
	// keeps trying as it does after losing the connection.
	nc, err = nats.Connect(url, append(opts, nats.RetryOnFailedConnect(true))...)
	if err != nil {
		return nil, fmt.Errorf("connect to NATS at %s: %w (start one with `maas nats` or `maas local --no-job`)", url, err)
	}
	go func() {
		time.Sleep(5 * time.Second)
		if !nc.IsConnected() && !nc.IsClosed() {
			log.Warn("still no NATS server; retrying (start one with `maas nats`)", zap.String("url", url),
				zap.NamedError("last_error", explain(nc.LastError(), url, o)))
		}
	}()
	return nc, nil
}

// explain turns the server's refusal of the process into an error that
// says what to do; other errors (an unreachable server) come back as
// they are.
func explain(err error, url string, o Options) error {
	if err == nil {
		return nil
	}
	var (
		verr    *tls.CertificateVerificationError
		unknown x509.UnknownAuthorityError
	)
	switch {
	case errors.Is(err, nats.ErrAuthorization), errors.Is(err, nats.ErrAuthExpired), errors.Is(err, nats.ErrAuthRevoked):
		if o.Seed == "" {
			return fmt.Errorf("%w: NATS at %s wants a user: pass --nats-seed, this process's <id>.nk from `maas cluster init` (%w)", ErrCredentials, url, err)
		}
		return fmt.Errorf("%w: NATS at %s does not know the user of --nats-seed %s: give this process's own <id>.nk of this cluster (the server's --auth file is nats-users.conf of the same `maas cluster init`) (%w)", ErrCredentials, url, o.Seed, err)
	case errors.Is(err, nats.ErrSecureConnWanted):
		return fmt.Errorf("%w: NATS at %s does not speak TLS, but --nats-ca asks for it: start the server with --tls-cert and --tls-key, or drop --nats-ca (%w)", ErrTLS, url, err)
	case errors.As(err, &unknown) || errors.As(err, &verr):
		if o.CA == "" {
			return fmt.Errorf("%w: NATS at %s requires TLS: pass --nats-ca, the cluster's ca.crt from `maas cluster init` (%w)", ErrTLS, url, err)
		}
		return fmt.Errorf("%w: the certificate of NATS at %s is not signed by --nats-ca %s (another cluster's CA?): give the ca.crt of the cluster this server belongs to (%w)", ErrTLS, url, o.CA, err)
	case clientCertRefused(err):
		if o.Cert == "" {
			return fmt.Errorf("%w: NATS at %s wants a client certificate: pass --nats-cert and --nats-key, this host's host-<name>.crt and .key (%w)", ErrTLS, url, err)
		}
		return fmt.Errorf("%w: NATS at %s refused the client certificate --nats-cert %s (not signed by the server's --tls-ca?) (%w)", ErrTLS, url, o.Cert, err)
	case errors.Is(err, nats.ErrTLS):
		return fmt.Errorf("%w: TLS with NATS at %s failed: check --nats-ca, --nats-cert and --nats-key against the server's --tls-cert, --tls-key and --tls-ca (%w)", ErrTLS, url, err)
	}
	return err
}

// clientCertRefused reports whether err is a server's refusal of the
// client's certificate, or of its having none. With TLS 1.3 the server
// checks it after the client's side of the handshake is done: it
// answers with an alert (a net.OpError of crypto/tls's unexported alert
// type, known by its text), or just closes the connection.
func clientCertRefused(err error) bool {
	msg := err.Error()
	for _, alert := range []string{"tls: certificate required", "tls: bad certificate", "tls: unknown certificate authority", "tls: certificate expired"} {
		if strings.Contains(msg, "remote error: "+alert) {
			return true
		}
	}
	return errors.Is(err, nats.ErrTLS) && strings.Contains(msg, "after TLS handshake")
}
