package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/maas-ml/maas/internal/api"
	"github.com/maas-ml/maas/internal/auth"
)

// pollInterval is how often readiness is checked.
const pollInterval = 250 * time.Millisecond

// apiTimeout bounds one call to a coordinator's API.
const apiTimeout = 3 * time.Second

// ClusterStatus asks the cluster's coordinators, in file order, for the
// cluster's state (GET /v1/cluster) and returns the first answer. With
// o.SecretsDir it asks over HTTPS, trusting the cluster's CA, with the
// read token.
func ClusterStatus(ctx context.Context, f *File, o LaunchOptions) (api.ClusterStatus, error) {
	opts, scheme, err := apiOptions(o.SecretsDir)
	if err != nil {
		return api.ClusterStatus{}, err
	}
	var errs []error
	for _, c := range f.RaftPeers() {
		cs, err := peerStatus(ctx, c, scheme, opts)
		if err == nil {
			return cs, nil
		}
		errs = append(errs, err)
	}
	return api.ClusterStatus{}, fmt.Errorf("%w: no coordinator answered: %w", ErrNotReady, errors.Join(errs...))
}

// apiOptions are the API client options and URL scheme of a cluster
// whose secrets are in dir: HTTPS trusting its CA, with its read token;
// plain HTTP without dir.
func apiOptions(dir string) ([]api.Option, string, error) {
	opts := []api.Option{api.WithTimeout(apiTimeout)}
	if dir == "" {
		return opts, "http://", nil
	}
	tc, err := ClientTLS(filepath.Join(dir, CACertFile), "", "")
	if err != nil {
		return nil, "", fmt.Errorf("%w: %w", ErrSecretsDir, err)
	}
	b, err := os.ReadFile(filepath.Join(dir, TokenFile(auth.RoleRead)))
	if err != nil {
		return nil, "", fmt.Errorf("%w: the read token: %w (run `maas cluster init` first)", ErrSecretsDir, err)
	}
	return append(opts, api.WithTLSConfig(tc), api.WithToken(strings.TrimSpace(string(b)))), "https://", nil
}

// peerStatus asks coordinator c's own API for the cluster's state.
func peerStatus(ctx context.Context, c RaftPeer, scheme string, opts []api.Option) (api.ClusterStatus, error) {
	cl, err := api.NewClient(scheme+c.HTTPAddr, opts...)
	if err != nil {
		return api.ClusterStatus{}, fmt.Errorf("cluster: coordinator %s: %w", c.ID, err)
	}
	ctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	cs, err := cl.Cluster(ctx)
	if err != nil {
		return api.ClusterStatus{}, fmt.Errorf("coordinator %s at %s: %w", c.ID, c.HTTPAddr, err)
	}
	return cs, nil
}

// waitFor calls check until it returns nil, ctx ends or timeout passes.
func waitFor(ctx context.Context, timeout time.Duration, what string, check func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		err := check(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %s after %v: %w", ErrNotReady, what, timeout, err)
		case <-time.After(pollInterval):
		}
	}
}

// dialTCP checks that addr accepts TCP connections.
func dialTCP(ctx context.Context, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	return c.Close()
}

// waitReady waits until stage st is ready: its ports accept connections
// (NATS, serve), the coordinator API lists its coordinators with a leader,
// or it lists its members as registered and not dead.
func (l *launcher) waitReady(ctx context.Context, st Stage) error {
	logs := func(ps []Process) string {
		var s []string
		for _, p := range ps {
			s = append(s, p.Host+":"+Layout{DataDir: l.f.host(p.Host).DataDir}.Log(p.ID))
		}
		return "; see " + strings.Join(s, ", ")
	}
	ids := map[string]bool{}
	for _, p := range st.Processes {
		ids[p.ID] = true
	}
	var check func(context.Context) error
	switch st.Processes[0].Kind {
	case KindNATS, KindServe:
		name := PortClient
		if st.Processes[0].Kind == KindServe {
			name = PortHTTP
		}
		check = func(ctx context.Context) error {
			for _, p := range st.Processes {
				if err := dialTCP(ctx, p.Addr(name)); err != nil {
					return fmt.Errorf("process %s: %w", p.ID, err)
				}
			}
			return nil
		}
	case KindCoordinator:
		check = func(ctx context.Context) error {
			cs, err := ClusterStatus(ctx, l.f, l.o)
			if err != nil {
				return err
			}
			if cs.Leader == "" {
				return errors.New("the coordinators have no leader")
			}
			return missing(ids, func(yield func(string) bool) {
				for _, n := range cs.Nodes {
					if !yield(n.ID) {
						return
					}
				}
			}, "coordinator")
		}
	case KindParamServer, KindWorker:
		check = func(ctx context.Context) error {
			cs, err := ClusterStatus(ctx, l.f, l.o)
			if err != nil {
				return err
			}
			ms := cs.Workers
			if st.Processes[0].Kind == KindParamServer {
				ms = cs.Servers
			}
			return missing(ids, func(yield func(string) bool) {
				for _, m := range ms {
					if m.State != "dead" && !yield(m.ID) {
						return
					}
				}
			}, "member")
		}
	}
	if err := waitFor(ctx, l.o.ReadyTimeout, st.Name, check); err != nil {
		return fmt.Errorf("%w%s", err, logs(st.Processes))
	}
	l.logf("%s ready", st.Name)
	return nil
}

// missing is an error naming the ids that listed does not yield, or nil.
func missing(ids map[string]bool, listed func(func(string) bool), what string) error {
	left := map[string]bool{}
	for id := range ids {
		left[id] = true
	}
	for id := range listed {
		delete(left, id)
	}
	if len(left) == 0 {
		return nil
	}
	var names []string
	for id := range left {
		names = append(names, id)
	}
	return fmt.Errorf("%s %s not listed by the coordinator API yet", what, strings.Join(names, ", "))
}
