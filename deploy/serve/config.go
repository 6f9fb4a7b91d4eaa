package serve

import (
	"crypto/tls"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/maas-ml/maas/tensor"
)

// Config configures a Server.
type Config struct {
	// Addr is where ListenAndServe listens (default 127.0.0.1:8080).
	Addr string
	// MaxBodyBytes bounds a request body (default 8 MiB); larger: 413.
	MaxBodyBytes int64
	// RequestTimeout bounds how long an inference request waits for its
	// forward pass (default 10 s); past it: 503. A request whose forward
	// pass has begun finishes.
	RequestTimeout time.Duration
	// Tokens, when not empty, are the bearer tokens accepted: every
	// request but /v2/health/* needs "Authorization: Bearer TOKEN" with
	// one of them (otherwise 401).
	Tokens []string
	// CheckToken, when set, checks the bearer token of every request but
	// /v2/health/* instead: nil lets the request through, an error
	// refuses it with 401 and the error's text. For the cluster's
	// tokens.json, the read role:
	//
	//	func(t string) error { return tokens.Check(t, auth.RoleRead) }
	//
	// Not with Tokens.
	CheckToken func(token string) error
	// TLS, when set, makes Serve and ListenAndServe speak HTTPS with it:
	// its certificate and, with ClientCAs and ClientAuth set, mutual TLS
	// (see cluster.ServerTLS). Nil serves plain HTTP.
	TLS *tls.Config
	// Logger gets the access log (one line per request: method, path,
	// status, duration, model, version) and the load events. Nil: none.
	Logger *zap.Logger
	// Registerer gets the Prometheus metrics. Nil: a new registry of the
	// server's own. /metrics serves it when it is also a Gatherer (a
	// *prometheus.Registry is), else prometheus.DefaultGatherer.
	Registerer prometheus.Registerer
	// Backend computes the forward passes of every model. Nil: a Go
	// backend on every core, closed by Shutdown.
	Backend tensor.Backend
	// DisableBatching runs each request alone (for benchmarks).
	DisableBatching bool
	// Instances is how many copies of each model version compute at once
	// (default 1), each taking its batches from the version's one queue, as
	// Triton's instance count: with 2, one instance gathers a batch while
	// the other computes. Memory per version grows by one model's weights
	// and buffers per instance.
	Instances int
	// Version is the server version in the server metadata (default dev).
	Version string
}

// Defaults of Config.
const (
	DefaultAddr           = "127.0.0.1:8080"
	DefaultMaxBodyBytes   = 8 << 20
	DefaultRequestTimeout = 10 * time.Second
)

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{Addr: DefaultAddr, MaxBodyBytes: DefaultMaxBodyBytes, RequestTimeout: DefaultRequestTimeout, Version: "dev", Instances: 1}
}

// Validate checks c; the error names the field and wraps ErrConfig.
func (c *Config) Validate() error {
	if c.MaxBodyBytes <= 0 {
		return fmt.Errorf("%w: MaxBodyBytes must be positive, got %d", ErrConfig, c.MaxBodyBytes)
	}
	if c.Instances < 0 || c.Instances > 64 {
		return fmt.Errorf("%w: Instances must be between 1 and 64 (0: 1), got %d", ErrConfig, c.Instances)
	}
	if c.RequestTimeout <= 0 {
		return fmt.Errorf("%w: RequestTimeout must be positive, got %v", ErrConfig, c.RequestTimeout)
	}
	if c.CheckToken != nil && len(c.Tokens) > 0 {
		return fmt.Errorf("%w: give Tokens (a list) or CheckToken, not both", ErrConfig)
	}
	if c.TLS != nil && len(c.TLS.Certificates) == 0 && c.TLS.GetCertificate == nil {
		return fmt.Errorf("%w: TLS has no certificate", ErrConfig)
	}
	for i, t := range c.Tokens {
		if t == "" {
			return fmt.Errorf("%w: Tokens[%d] is empty", ErrConfig, i)
		}
	}
	return nil
}
