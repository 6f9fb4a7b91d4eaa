package cluster

import (
	"context"
	"errors"
	"fmt"
)

// Upgrade replaces the binary on the hosts and restarts their processes,
// one host at a time in file order. It first checks every host's platform,
// so that a wrong binary changes nothing. On each host it installs the
// binary, then restarts the host's processes role by role in start order,
// waiting for each to be ready before the next: NATS accepts connections,
// the coordinator answers on its own API and knows a leader, members are
// registered, serve listens. As a host runs at most one coordinator, the
// coordinators restart one at a time and the Raft cluster keeps its
// quorum. A process that was not running is started.
func Upgrade(ctx context.Context, f *File, o LaunchOptions) error {
	l := newLauncher(f, o)
	defer l.close()
	bin, plat, err := l.binary()
	if err != nil {
		return err
	}
	if err := forEach(ctx, l.hosts(), l.o.Parallel, func(ctx context.Context, h *Host) error {
		_, err := l.check(ctx, h, bin, plat)
		return err
	}); err != nil {
		return err
	}
	for _, h := range l.hosts() {
		if err := l.prepare(ctx, h, bin, plat); err != nil {
			return err
		}
		for _, k := range Kinds {
			var ps []Process
			var ids []string
			for _, p := range f.hostProcesses(h) {
				if p.Kind == k {
					ps = append(ps, p)
					ids = append(ids, p.ID)
				}
			}
			if len(ps) == 0 {
				continue
			}
			l.logf("%s: restarting %s", h.Name, k)
			if err := l.stop(ctx, h, ids); err != nil {
				return err
			}
			if err := l.start(ctx, ps); err != nil {
				return err
			}
			if k == KindCoordinator {
				err = l.waitCoordinator(ctx, ps[0])
			} else {
				err = l.waitReady(ctx, Stage{Name: h.Name + " " + string(k), Processes: ps})
			}
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// waitCoordinator waits until coordinator p answers on its own API and
// knows a leader.
func (l *launcher) waitCoordinator(ctx context.Context, p Process) error {
	peer := RaftPeer{ID: p.ID, RaftAddr: p.Addr(PortRaft), HTTPAddr: p.Addr(PortHTTP)}
	opts, scheme, err := apiOptions(l.o.SecretsDir)
	if err != nil {
		return err
	}
	err = waitFor(ctx, l.o.ReadyTimeout, "coordinator "+p.ID, func(ctx context.Context) error {
		cs, err := peerStatus(ctx, peer, scheme, opts)
		if err != nil {
			return err
		}
		if cs.Leader == "" {
			return errors.New("no leader")
		}
		for _, n := range cs.Nodes {
			if n.ID == p.ID {
				return nil
			}
		}
		return fmt.Errorf("coordinator %s is not in the Raft configuration", p.ID)
	})
	if err != nil {
		return fmt.Errorf("%w; see %s:%s", err, p.Host, Layout{DataDir: l.f.host(p.Host).DataDir}.Log(p.ID))
	}
	l.logf("%s: coordinator %s ready", p.Host, p.ID)
	return nil
}
