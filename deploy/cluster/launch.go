package cluster

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/maas-ml/maas/internal/auth"
)

// Supervisor is how the launcher runs processes on a host.
type Supervisor string

// Supervisors.
const (
	// SupervisorAuto uses systemd where systemctl is-system-running says
	// running or degraded and the SSH user is root, else nohup.
	SupervisorAuto Supervisor = "auto"
	// SupervisorSystemd installs one unit per process.
	SupervisorSystemd Supervisor = "systemd"
	// SupervisorNohup starts each process detached (setsid nohup) with a
	// pid file.
	SupervisorNohup Supervisor = "nohup"
)

// LaunchOptions configure Up, Status and Down. The zero value is usable.
type LaunchOptions struct {
	// Binary is the maas executable to install on the hosts; default the
	// running one (os.Executable).
	Binary string
	// SecretsDir, when set, is the directory `maas cluster init` wrote;
	// each host is given its own part of it under <data_dir>/secrets.
	SecretsDir string
	// Supervisor is how processes are run; default SupervisorAuto.
	Supervisor Supervisor
	// Progress receives a line per step; nil discards them.
	Progress io.Writer
	// ReadyTimeout bounds the wait for each stage to be ready; default 90 s.
	ReadyTimeout time.Duration
	// StopGrace is how long Down waits after SIGTERM before SIGKILL;
	// default 10 s.
	StopGrace time.Duration
	// Parallel bounds the hosts worked on at once; default 8.
	Parallel int
}

func (o LaunchOptions) withDefaults() LaunchOptions {
	if o.Supervisor == "" {
		o.Supervisor = SupervisorAuto
	}
	if o.ReadyTimeout <= 0 {
		o.ReadyTimeout = 90 * time.Second
	}
	if o.StopGrace <= 0 {
		o.StopGrace = 10 * time.Second
	}
	if o.Parallel <= 0 {
		o.Parallel = 8
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	return o
}

// launcher holds the SSH connections of one Up, Status or Down.
type launcher struct {
	f *File
	o LaunchOptions

	// mu guards conns, supervisors and writes to o.Progress.
	mu          sync.Mutex
	conns       map[string]*sshHost
	supervisors map[string]Supervisor

	// bin is the binary to install, read once, and binSum its SHA-256 in
	// hex.
	bin    []byte
	binSum string
}

func newLauncher(f *File, o LaunchOptions) *launcher {
	return &launcher{f: f, o: o.withDefaults(), conns: map[string]*sshHost{}, supervisors: map[string]Supervisor{}}
}

func (l *launcher) logf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(l.o.Progress, format+"\n", args...)
}

// conn is the SSH connection to host h, dialled on first use.
func (l *launcher) conn(ctx context.Context, h *Host) (*sshHost, error) {
	l.mu.Lock()
	c := l.conns[h.Name]
	l.mu.Unlock()
	if c != nil {
		return c, nil
	}
	c, err := dialHost(ctx, l.f, h)
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if old := l.conns[h.Name]; old != nil {
		c.Close()
		return old, nil
	}
	l.conns[h.Name] = c
	return c, nil
}

func (l *launcher) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range l.conns {
		c.Close()
	}
}

// hosts are pointers to the file's hosts.
func (l *launcher) hosts() []*Host {
	hs := make([]*Host, len(l.f.Hosts))
	for i := range l.f.Hosts {
		hs[i] = &l.f.Hosts[i]
	}
	return hs
}

// forEach runs fn on each item, at most n at once, and joins the errors.
func forEach[T any](ctx context.Context, items []T, n int, fn func(context.Context, T) error) error {
	sem := make(chan struct{}, n)
	errs := make([]error, len(items))
	var wg sync.WaitGroup
	for i, it := range items {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				errs[i] = ctx.Err()
				return
			}
			defer func() { <-sem }()
			errs[i] = fn(ctx, it)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// byHost groups processes by host, in file order.
func (l *launcher) byHost(ps []Process) map[*Host][]string {
	m := map[*Host][]string{}
	for _, p := range ps {
		h := l.f.host(p.Host)
		m[h] = append(m[h], p.ID)
	}
	return m
}

// hostsOf are the keys of m in file order.
func (l *launcher) hostsOf(m map[*Host][]string) []*Host {
	var hs []*Host
	for _, h := range l.hosts() {
		if _, ok := m[h]; ok {
			hs = append(hs, h)
		}
	}
	return hs
}

// Up installs the binary (and secrets) on every host and starts the
// cluster's processes stage by stage (Stages), waiting for each stage to be
// ready before the next. Processes already running are left alone.
func Up(ctx context.Context, f *File, o LaunchOptions) error {
	l := newLauncher(f, o)
	defer l.close()
	bin, plat, err := l.binary()
	if err != nil {
		return err
	}
	l.logf("installing %s (%s) on %d hosts", bin, plat, len(f.Hosts))
	if err := forEach(ctx, l.hosts(), l.o.Parallel, func(ctx context.Context, h *Host) error {
		return l.prepare(ctx, h, bin, plat)
	}); err != nil {
		return err
	}
	for _, st := range f.Stages() {
		l.logf("starting %s", st.Name)
		if err := l.start(ctx, st.Processes); err != nil {
			return err
		}
		if err := l.waitReady(ctx, st); err != nil {
			return err
		}
	}
	return nil
}

// binary reads the local executable to install and tells its platform.
func (l *launcher) binary() (string, Platform, error) {
	path, plat := l.o.Binary, Platform{OS: runtime.GOOS, Arch: runtime.GOARCH}
	if path == "" {
		self, err := os.Executable()
		if err != nil {
			return "", Platform{}, fmt.Errorf("cluster: the running executable: %w; give --binary", err)
		}
		path = self
	} else {
		p, err := filePlatform(path)
		if err != nil {
			return "", Platform{}, fmt.Errorf("%w: --binary %w", ErrPlatform, err)
		}
		plat = p
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", Platform{}, fmt.Errorf("cluster: binary: %w", err)
	}
	sum := sha256.Sum256(b)
	l.bin, l.binSum = b, hex.EncodeToString(sum[:])
	return path, plat, nil
}

// prepare logs in to h, checks its platform, picks its supervisor and
// installs the binary and the host's secrets.
func (l *launcher) prepare(ctx context.Context, h *Host, bin string, plat Platform) error {
	c, err := l.check(ctx, h, bin, plat)
	if err != nil {
		return err
	}
	if err := l.installBinary(ctx, c); err != nil {
		return err
	}
	return l.installSecrets(ctx, c)
}

// check logs in to h, checks that its platform is plat and picks its
// supervisor.
func (l *launcher) check(ctx context.Context, h *Host, bin string, plat Platform) (*sshHost, error) {
	c, err := l.conn(ctx, h)
	if err != nil {
		return nil, err
	}
	out, err := c.run(ctx, "uname -sm", nil)
	if err != nil {
		return nil, err
	}
	remote, err := unamePlatform(string(out))
	if err != nil {
		return nil, fmt.Errorf("%w: host %s: %w", ErrPlatform, h.Name, err)
	}
	if remote != plat {
		return nil, fmt.Errorf("%w: host %s is %s but %s is built for %s; build maas for %s (GOOS=%s GOARCH=%s) and give it with --binary",
			ErrPlatform, h.Name, remote, bin, plat, remote, remote.OS, remote.Arch)
	}
	sup := l.o.Supervisor
	if sup == SupervisorAuto {
		out, err := c.run(ctx, systemdScript, nil)
		if err != nil {
			return nil, err
		}
		sup = Supervisor(strings.TrimSpace(string(out)))
	}
	l.mu.Lock()
	l.supervisors[h.Name] = sup
	l.mu.Unlock()
	return c, nil
}

// installBinary copies the binary (read by binary) to the host's
// Layout.Bin, unless the same file is already there.
func (l *launcher) installBinary(ctx context.Context, c *sshHost) error {
	dst := Layout{DataDir: c.host.DataDir}.Bin()
	out, _ := c.run(ctx, "sha256sum "+shq(dst)+" 2>/dev/null", nil)
	if f := strings.Fields(string(out)); len(f) > 0 && f[0] == l.binSum {
		l.logf("%s: %s is up to date", c.host.Name, dst)
		return nil
	}
	if err := c.writeFile(ctx, dst, l.bin, 0o755); err != nil {
		return err
	}
	l.logf("%s: installed %s", c.host.Name, dst)
	return nil
}

// hostSecrets are the names of the files of the secrets directory host h
// is given: the CA's certificate, its own certificate and key, its
// processes' NATS seeds, the NATS users when it runs nats, the token
// hashes when it runs a coordinator or serve, the admin token a
// coordinator joins with, and the read token serve reads the model index
// with. Never the CA's key or the operator's seed.
func (f *File) hostSecrets(h *Host) []string {
	names := []string{CACertFile, HostCertFile(h.Name), HostKeyFile(h.Name)}
	for _, p := range f.hostProcesses(h) {
		if _, ok := f.userPermissions(p); ok { // full NATS members are not NATS users
			names = append(names, SeedFile(p.ID))
		}
	}
	if h.Has(KindNATS) {
		names = append(names, NATSUsersFile)
	}
	if h.Has(KindCoordinator) || h.Has(KindServe) {
		names = append(names, TokensFile)
	}
	if h.Has(KindCoordinator) {
		names = append(names, TokenFile(auth.RoleAdmin))
	}
	if h.Has(KindServe) {
		names = append(names, TokenFile(auth.RoleRead))
	}
	return names
}

// installSecrets copies the host's part of the secrets directory, when one
// is given, to Layout.Secrets (mode 0600 files in a 0700 directory).
func (l *launcher) installSecrets(ctx context.Context, c *sshHost) error {
	if l.o.SecretsDir == "" {
		return nil
	}
	dst := Layout{DataDir: c.host.DataDir}.Secrets()
	var files []remoteFile
	for _, name := range l.f.hostSecrets(c.host) {
		b, err := os.ReadFile(filepath.Join(l.o.SecretsDir, name))
		if err != nil {
			return fmt.Errorf("%w: host %s needs %s: %w (run `maas cluster init` first)", ErrSecretsDir, c.host.Name, name, err)
		}
		files = append(files, remoteFile{Name: name, Data: b, Mode: 0o600})
	}
	if err := c.writeFiles(ctx, dst, files); err != nil {
		return err
	}
	l.logf("%s: installed its secrets in %s", c.host.Name, dst)
	return nil
}

// start writes the start scripts (and units) of ps and starts those not
// running, host by host in parallel.
func (l *launcher) start(ctx context.Context, ps []Process) error {
	procs := map[string]Process{}
	for _, p := range ps {
		procs[p.ID] = p
	}
	groups := l.byHost(ps)
	return forEach(ctx, l.hostsOf(groups), l.o.Parallel, func(ctx context.Context, h *Host) error {
		c, err := l.conn(ctx, h)
		if err != nil {
			return err
		}
		l.mu.Lock()
		systemd := l.supervisors[h.Name] == SupervisorSystemd
		l.mu.Unlock()
		lay := Layout{DataDir: h.DataDir}
		var scripts []remoteFile
		for _, id := range groups[h] {
			scripts = append(scripts, remoteFile{Name: id + "/run", Data: []byte(l.f.RunScript(procs[id], l.o.SecretsDir != "")), Mode: 0o755})
		}
		if err := c.writeFiles(ctx, h.DataDir, scripts); err != nil {
			return fmt.Errorf("start scripts of %s: %w", strings.Join(groups[h], ", "), err)
		}
		for _, id := range groups[h] {
			p := procs[id]
			if systemd {
				if err := c.writeFile(ctx, UnitPath(id), []byte(l.f.Unit(p)), 0o644); err != nil {
					return fmt.Errorf("process %s: %w", id, err)
				}
			}
		}
		out, err := c.run(ctx, startScript(lay, groups[h], systemd), nil)
		if err != nil {
			return fmt.Errorf("start %s: %w", strings.Join(groups[h], ", "), err)
		}
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if line != "" {
				l.logf("%s: %s", h.Name, line)
			}
		}
		return nil
	})
}

// stop stops the processes ids of host h: SIGTERM (or systemctl disable
// --now), then SIGKILL for those still running after StopGrace.
func (l *launcher) stop(ctx context.Context, h *Host, ids []string) error {
	c, err := l.conn(ctx, h)
	if err != nil {
		return err
	}
	grace := int((l.o.StopGrace + time.Second - 1) / time.Second)
	limit := time.Duration(grace)*time.Second + DefaultSSHTimeout
	out, err := c.runFor(ctx, limit, stopScript(Layout{DataDir: h.DataDir}, ids, grace), nil)
	if err != nil {
		return fmt.Errorf("stop %s: %w", strings.Join(ids, ", "), err)
	}
	for _, id := range strings.Fields(strings.ReplaceAll(string(out), " killed", "")) {
		l.logf("%s: %s did not stop in %v; killed", h.Name, id, l.o.StopGrace)
	}
	return nil
}

// ProcessState is a process of the cluster and whether it runs.
type ProcessState struct {
	Process
	// PID is its process id on its host; 0 when it is not running.
	PID int
	// Err is why its host could not be asked; nil when it was.
	Err error
}

// Running reports whether the process runs.
func (s ProcessState) Running() bool { return s.PID != 0 }

// Status asks every host over SSH which of its processes run. A host that
// cannot be asked has Err set on its processes; the error joins those
// errors.
func Status(ctx context.Context, f *File, o LaunchOptions) ([]ProcessState, error) {
	l := newLauncher(f, o)
	defer l.close()
	return l.status(ctx)
}

func (l *launcher) status(ctx context.Context) ([]ProcessState, error) {
	groups := l.byHost(l.f.Processes())
	var mu sync.Mutex
	pids := map[string]int{}
	hostErr := map[string]error{}
	err := forEach(ctx, l.hostsOf(groups), l.o.Parallel, func(ctx context.Context, h *Host) error {
		c, err := l.conn(ctx, h)
		var out []byte
		if err == nil {
			out, err = c.run(ctx, statusScript(Layout{DataDir: h.DataDir}, groups[h]), nil)
		}
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			hostErr[h.Name] = err
			return err
		}
		for id, pid := range parseStatus(string(out)) {
			pids[id] = pid
		}
		return nil
	})
	var states []ProcessState
	for _, p := range l.f.Processes() {
		states = append(states, ProcessState{Process: p, PID: pids[p.ID], Err: hostErr[p.Host]})
	}
	return states, err
}

// Down stops the cluster's processes stage by stage in reverse start
// order, then checks that none is left. With purge it also removes what Up
// put on the hosts: the processes' directories and state, the units, the
// binary and the secrets.
func Down(ctx context.Context, f *File, o LaunchOptions, purge bool) error {
	l := newLauncher(f, o)
	defer l.close()
	stages := f.Stages()
	var errs []error
	for i := len(stages) - 1; i >= 0; i-- {
		st := stages[i]
		l.logf("stopping %s", st.Name)
		groups := l.byHost(st.Processes)
		err := forEach(ctx, l.hostsOf(groups), l.o.Parallel, func(ctx context.Context, h *Host) error {
			return l.stop(ctx, h, groups[h])
		})
		if err != nil {
			errs = append(errs, err)
		}
	}
	states, err := l.status(ctx)
	if err != nil {
		errs = append(errs, err)
	}
	var left []string
	for _, s := range states {
		if s.Running() {
			left = append(left, fmt.Sprintf("%s on %s (pid %d)", s.ID, s.Host, s.PID))
		}
	}
	if len(left) > 0 {
		sort.Strings(left)
		errs = append(errs, fmt.Errorf("%w: %s", ErrStillRunning, strings.Join(left, ", ")))
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if purge {
		groups := l.byHost(f.Processes())
		err := forEach(ctx, l.hostsOf(groups), l.o.Parallel, func(ctx context.Context, h *Host) error {
			c, err := l.conn(ctx, h)
			if err != nil {
				return err
			}
			if _, err := c.run(ctx, purgeScript(Layout{DataDir: h.DataDir}, groups[h]), nil); err != nil {
				return fmt.Errorf("purge %s: %w", h.DataDir, err)
			}
			l.logf("%s: removed the cluster's files from %s", h.Name, h.DataDir)
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}
