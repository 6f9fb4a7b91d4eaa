// Package natsserver runs the real NATS server (nats-server/v2) inside a
// maas process, with JetStream for the Object Store buckets: the embedded
// default (`maas local`) and the `maas nats` role.
package natsserver

import (
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/nats-io/nats-server/v2/server"
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
	// ReadyTimeout bounds the wait for the server to accept connections.
	ReadyTimeout time.Duration
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
	}
	for _, r := range c.Routes {
		if _, err := url.Parse(r); err != nil {
			return fmt.Errorf("natsserver: route %q: %w", r, err)
		}
	}
	return nil
}

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
	}
	if c.ClusterPort != 0 {
		opts.Cluster = server.ClusterOpts{Name: c.ClusterName, Host: c.Host, Port: c.ClusterPort}
		for _, r := range c.Routes {
			u, _ := url.Parse(r)
			opts.Routes = append(opts.Routes, u)
		}
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
