// Package natsserver runs the real NATS server (nats-server/v2) inside a
// maas process, with JetStream for the Object Store buckets: the embedded
// default (`maas local`) and the `maas nats` role.
//
// By default the server is open and plain, as `maas local` wants it on
// loopback. A cluster's server is secured with the files of `maas cluster
// init`: AuthFile (nats-users.conf) lets in only the users it lists, each
// proving its nkey and held to its permissions; TLSCert and TLSKey make
// every client speak TLS, and TLSCA makes each present a certificate of
// the cluster's CA (and secures the routes between servers); RouteCA
// secures the routes alone.
package natsserver

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"

	"github.com/maas-ml/maas/internal/wire"
)

// Config configures an embedded NATS server.
type Config struct {
	// Host and Port to listen on for clients; Port −1 picks a free port.
	Host string
	Port int
	// StoreDir holds JetStream's data; empty disables JetStream.
	StoreDir string
	// MaxPayload caps a message's size (default 1 MiB, NATS's default).
	MaxPayload int32
	// ServerName names this server (required in a cluster).
	ServerName string
	// ClusterName, ClusterPort and Routes join other NATS servers; leave
	// ClusterPort 0 for a single server.
	ClusterName string
	ClusterPort int
	Routes      []string
	// LeafPort, when not 0, accepts leaf-node connections: the NATS
	// servers of other hosts that extend this one (LeafRemotes). A leaf
	// connection authenticates as a user of AuthFile, held to its
	// permissions, and speaks mutual TLS with TLSCA or RouteCA.
	LeafPort int
	// LeafRemotes, when set, make this server a leaf node of the servers
	// at these URLs (nats://host:leaf_port, tried in this order): its clients
	// reach everything the others' clients do, and a message crosses the
	// leaf connection once however many of its subscribers are here.
	// LeafSeed is the nkey seed file the leaf connection authenticates
	// with (a secured cluster's).
	LeafRemotes []string
	LeafSeed    string
	// ReadyTimeout bounds the wait for the server to accept connections.
	ReadyTimeout time.Duration

	// TLSCert and TLSKey, when set, are the server's certificate and key
	// (a host's from `maas cluster init`): clients must then speak TLS.
	TLSCert, TLSKey string
	// TLSCA, with TLSCert, is the CA whose certificates clients must
	// present (mutual TLS) and routes are checked against; routes use
	// TLS only with it.
	TLSCA string
	// RouteCA, with TLSCert, checks the routes between servers against
	// this CA (mutual TLS) without asking clients for certificates: they
	// prove themselves by their nkeys (AuthFile). Ignored with TLSCA.
	RouteCA string
	// AuthFile, when set, is a NATS configuration file holding an
	// authorization block (nats-users.conf from `maas cluster init`):
	// only its users may connect, each with its permissions.
	AuthFile string
}

// DefaultConfig is a single server on loopback at NATS's usual port.
func DefaultConfig() Config {
	return Config{Host: "127.0.0.1", Port: 4222, MaxPayload: 1 << 20, ReadyTimeout: 10 * time.Second}
}

// Validate reports a config that cannot start.
func (c Config) Validate() error {
	switch {
	case c.Port < -1 || c.Port > 65535:
		return fmt.Errorf("natsserver: port %d out of range", c.Port)
	case c.MaxPayload < 0:
		return fmt.Errorf("natsserver: max payload %d must not be negative", c.MaxPayload)
	case c.ClusterPort != 0 && (c.ClusterName == "" || c.ServerName == ""):
		return errors.New("natsserver: a clustered server needs a cluster name and a server name")
	case (c.TLSCert == "") != (c.TLSKey == ""):
		return fmt.Errorf("%w: TLS needs both a certificate and its key (host-<name>.crt and .key)", ErrTLS)
	case c.TLSCA != "" && c.TLSCert == "":
		return fmt.Errorf("%w: a CA to check clients needs the server's own certificate and key too", ErrTLS)
	case c.RouteCA != "" && c.TLSCert == "":
		return fmt.Errorf("%w: a CA to check routes needs the server's own certificate and key too", ErrTLS)
	case c.TLSCert != "" && c.ClusterPort != 0 && c.TLSCA == "" && c.RouteCA == "":
		return fmt.Errorf("%w: routes over TLS need the CA that signed the other servers' certificates (the cluster's ca.crt)", ErrTLS)
	case c.TLSCert != "" && (c.LeafPort != 0 || len(c.LeafRemotes) > 0) && c.TLSCA == "" && c.RouteCA == "":
		return fmt.Errorf("%w: leaf connections over TLS need the CA that signed the other servers' certificates (the cluster's ca.crt)", ErrTLS)
	case c.LeafPort < 0 || c.LeafPort > 65535:
		return fmt.Errorf("natsserver: leaf port %d out of range", c.LeafPort)
	case len(c.LeafRemotes) > 0 && c.StoreDir != "":
		return errors.New("natsserver: a leaf node has no JetStream of its own (its clients use the hub's); give no store directory")
	}
	for _, r := range c.Routes {
		if _, err := url.Parse(r); err != nil {
			return fmt.Errorf("natsserver: route %q: %w", r, err)
		}
	}
	for _, r := range c.LeafRemotes {
		if u, err := url.Parse(r); err != nil || u.Host == "" {
			return fmt.Errorf("natsserver: leaf remote %q: want nats://host:port", r)
		}
	}
	return nil
}

// Errors of a secured server's configuration.
var (
	// ErrTLS: the TLS files cannot be used together or at all.
	ErrTLS = errors.New("natsserver: unusable TLS configuration")
	// ErrAuth: the authorization file cannot be read, or lets no one in.
	ErrAuth = errors.New("natsserver: unusable authorization file")
)

// secure adds c's TLS and authorization to opts.
func (c Config) secure(opts *server.Options) error {
	if c.TLSCert != "" {
		tc := &server.TLSConfigOpts{CertFile: c.TLSCert, KeyFile: c.TLSKey, CaFile: c.TLSCA, Verify: c.TLSCA != ""}
		cfg, err := server.GenTLSConfig(tc)
		if err != nil {
			return fmt.Errorf("%w: %s, %s: %v", ErrTLS, c.TLSCert, c.TLSKey, err)
		}
		opts.TLSConfig, opts.TLS, opts.TLSVerify, opts.TLSTimeout = cfg, true, tc.Verify, tlsTimeout
		if c.ClusterPort != 0 {
			// A route is both a client and a server: it checks the other
			// end's certificate either way.
			rc, err := c.peerTLS()
			if err != nil {
				return fmt.Errorf("%w: routes: %v", ErrTLS, err)
			}
			opts.Cluster.TLSConfig, opts.Cluster.TLSTimeout = rc, tlsTimeout
		}
		if c.LeafPort != 0 || len(c.LeafRemotes) > 0 {
			rc, err := c.peerTLS()
			if err != nil {
				return fmt.Errorf("%w: leaf connections: %v", ErrTLS, err)
			}
			opts.LeafNode.TLSConfig, opts.LeafNode.TLSTimeout = rc, tlsTimeout
			for _, r := range opts.LeafNode.Remotes {
				r.TLS, r.TLSConfig, r.TLSTimeout = true, rc, tlsTimeout
			}
		}
	}
	if c.LeafSeed != "" {
		seed, err := readSeed(c.LeafSeed)
		if err != nil {
			return err
		}
		for _, r := range opts.LeafNode.Remotes {
			r.Nkey = seed
		}
	}
	if c.AuthFile != "" {
		fo, err := server.ProcessConfigFile(c.AuthFile)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrAuth, err)
		}
		if len(fo.Nkeys) == 0 && len(fo.Users) == 0 {
			return fmt.Errorf("%w: %s lists no users; give the nats-users.conf of `maas cluster init`", ErrAuth, c.AuthFile)
		}
		opts.Nkeys, opts.Users = fo.Nkeys, fo.Users
	}
	return nil
}

// peerTLS is the mutual TLS between NATS servers (routes, leaf
// connections): the host's certificate, the other end's checked against
// the cluster's CA either way.
func (c Config) peerTLS() (*tls.Config, error) {
	ca := c.TLSCA
	if ca == "" {
		ca = c.RouteCA
	}
	rc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: c.TLSCert, KeyFile: c.TLSKey, CaFile: ca, Verify: true})
	if err != nil {
		return nil, fmt.Errorf("%s, %s, %s: %v", c.TLSCert, c.TLSKey, ca, err)
	}
	rc.ClientAuth, rc.RootCAs = tls.RequireAndVerifyClientCert, rc.ClientCAs
	return rc, nil
}

// readSeed reads a user nkey seed file (a secured cluster's <id>.nk).
func readSeed(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("%w: leaf seed: %v", ErrAuth, err)
	}
	seed := strings.TrimSpace(string(b))
	if _, err := nkeys.FromSeed([]byte(seed)); err != nil {
		return "", fmt.Errorf("%w: leaf seed %s: %v", ErrAuth, path, err)
	}
	return seed, nil
}

// tlsTimeout is the seconds a client has to finish its TLS handshake.
const tlsTimeout = 2

// Start starts the server and waits until it accepts connections. Stop it
// with Shutdown and WaitForShutdown.
func Start(c Config) (*server.Server, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	opts := &server.Options{
		Host:       c.Host,
		Port:       c.Port,
		ServerName: c.ServerName,
		MaxPayload: c.MaxPayload,
		NoSigs:     true,
		NoLog:      true,
	}
	if opts.MaxPayload == 0 {
		opts.MaxPayload = 1 << 20
	}
	if c.StoreDir != "" {
		opts.JetStream = true
		opts.StoreDir = c.StoreDir
		opts.JetStreamDomain = wire.JetStreamDomain
	}
	if c.ClusterPort != 0 {
		opts.Cluster = server.ClusterOpts{Name: c.ClusterName, Host: c.Host, Port: c.ClusterPort}
		for _, r := range c.Routes {
			u, _ := url.Parse(r)
			opts.Routes = append(opts.Routes, u)
		}
	}
	if c.LeafPort != 0 {
		opts.LeafNode.Host, opts.LeafNode.Port = c.Host, c.LeafPort
	}
	if len(c.LeafRemotes) > 0 {
		r := &server.RemoteLeafOpts{NoRandomize: true} // the order is the launcher's: leaves spread over the hubs
		for _, s := range c.LeafRemotes {
			u, _ := url.Parse(s)
			r.URLs = append(r.URLs, u)
		}
		opts.LeafNode.Remotes = []*server.RemoteLeafOpts{r}
		opts.LeafNode.ReconnectInterval = time.Second
	}
	if err := c.secure(opts); err != nil {
		return nil, err
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("natsserver: %w", err)
	}
	go s.Start()
	wait := c.ReadyTimeout
	if wait == 0 {
		wait = 10 * time.Second
	}
	if !s.ReadyForConnections(wait) {
		s.Shutdown()
		return nil, fmt.Errorf("natsserver: not accepting connections on %s:%d after %v (port in use?)", c.Host, c.Port, wait)
	}
	return s, nil
}
