package scale

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/maas-ml/maas/deploy/cluster"
	"github.com/maas-ml/maas/internal/api"
	"github.com/maas-ml/maas/internal/auth"
	"github.com/maas-ml/maas/internal/netemu"
)

// Layout is the shape of a testbed: server hosts (h1…: a full NATS
// member and parameter servers each, h1 the coordinator too) and worker
// hosts after them, each running the same number of single-threaded
// workers.
type Layout struct {
	WorkerHosts    int
	WorkersPerHost int
	// Servers is the number of parameter servers (default 1), spread
	// evenly over ServerHosts hosts (default 1), each with its own link.
	Servers     int
	ServerHosts int
	// DataRoots are the directories jobs may read dataset paths under
	// (the cluster file's data_roots).
	DataRoots []string
	// LeafNATS gives every worker host its own NATS server, a leaf node of
	// the server host's, which the host's workers connect to.
	LeafNATS bool
	// RoutedNATS gives every worker host its own NATS server as a full
	// member of the cluster (routed to every other, with JetStream)
	// instead.
	RoutedNATS bool
}

// Workers is the number of workers, K.
func (l Layout) Workers() int { return l.WorkerHosts * l.WorkersPerHost }

// serverHosts is the number of server hosts, S: the first S of the
// testbed's hosts.
func (l Layout) serverHosts() int { return max(l.ServerHosts, 1) }

// LayoutFor spreads k workers over up to maxHosts worker hosts, as many
// hosts as divide k evenly, and servers parameter servers over
// serverHosts hosts (servers a multiple of serverHosts).
func LayoutFor(k, maxHosts, servers, serverHosts int) (Layout, error) {
	if k < 1 || maxHosts < 1 {
		return Layout{}, fmt.Errorf("scale: %d workers on up to %d hosts", k, maxHosts)
	}
	servers, serverHosts = max(servers, 1), max(serverHosts, 1)
	if servers%serverHosts != 0 {
		return Layout{}, fmt.Errorf("scale: %d parameter servers do not spread evenly over %d server hosts", servers, serverHosts)
	}
	h := min(k, maxHosts)
	for k%h != 0 {
		h--
	}
	return Layout{WorkerHosts: h, WorkersPerHost: k / h, Servers: servers, ServerHosts: serverHosts}, nil
}

// metricsPort is the first worker's metrics port on a worker host.
const metricsPort = 9300

// Testbed is a maas cluster on emulated hosts, launched as `maas cluster
// up` launches one: secrets from `maas cluster init`, every host reached
// over SSH, processes started under nohup from the installed binary.
type Testbed struct {
	Layout Layout
	Net    *netemu.Net
	File   *cluster.File
	API    *api.Client

	dir      string
	opts     cluster.LaunchOptions
	stops    []func()
	measured map[float64]linkRates // by shaped rate
}

// Up makes the hosts, starts an SSH server in each and launches the
// cluster with binary (a static maas), keeping its files under dir.
// progress gets the launcher's lines. Close takes it all down.
func Up(ctx context.Context, dir, binary string, l Layout, progress io.Writer) (*Testbed, error) {
	if err := netemu.Available(); err != nil {
		return nil, err
	}
	if _, err := os.Stat(netemu.SSHD); err != nil {
		return nil, fmt.Errorf("%w: no OpenSSH server at %s (apt-get install openssh-server)", netemu.ErrUnavailable, netemu.SSHD)
	}
	nt, err := netemu.New(l.serverHosts() + l.WorkerHosts)
	if err != nil {
		return nil, err
	}
	tb := &Testbed{Layout: l, Net: nt, dir: dir}
	ok := false
	defer func() {
		if !ok {
			tb.Close(context.Background())
		}
	}()
	clientKey := filepath.Join(dir, "id_ed25519")
	if err := netemu.SSHKeygen(clientKey); err != nil {
		return nil, err
	}
	clientPub, err := os.ReadFile(clientKey + ".pub")
	if err != nil {
		return nil, err
	}
	var known bytes.Buffer
	for i, h := range nt.Hosts {
		sd := filepath.Join(dir, "sshd-"+h.Name)
		if err := os.MkdirAll(sd, 0o700); err != nil {
			return nil, err
		}
		pub, stop, err := nt.StartSSHD(i, sd, clientPub)
		if err != nil {
			return nil, err
		}
		tb.stops = append(tb.stops, stop)
		fmt.Fprintf(&known, "%s %s", h.Addr, pub)
	}
	knownHosts := filepath.Join(dir, "known_hosts")
	if err := os.WriteFile(knownHosts, known.Bytes(), 0o600); err != nil {
		return nil, err
	}
	f, err := cluster.Parse([]byte(clusterFile(nt, l, dir, clientKey, knownHosts)))
	if err != nil {
		return nil, fmt.Errorf("scale: the testbed's cluster file: %w", err)
	}
	tb.File = f
	secrets := filepath.Join(dir, "secrets")
	if _, err := cluster.Init(tb.File, secrets, cluster.InitOptions{Force: true}); err != nil {
		return nil, err
	}
	tb.opts = cluster.LaunchOptions{Binary: binary, SecretsDir: secrets, Supervisor: cluster.SupervisorNohup, Progress: progress}
	if err := cluster.Up(ctx, tb.File, tb.opts); err != nil {
		return nil, err
	}
	tc, err := cluster.ClientTLS(filepath.Join(secrets, cluster.CACertFile), "", "")
	if err != nil {
		return nil, err
	}
	token, err := os.ReadFile(filepath.Join(secrets, cluster.TokenFile(auth.RoleSubmit)))
	if err != nil {
		return nil, err
	}
	if tb.API, err = api.NewClient("https://"+tb.File.RaftPeers()[0].HTTPAddr, api.WithTLSConfig(tc), api.WithToken(strings.TrimSpace(string(token)))); err != nil {
		return nil, err
	}
	ok = true
	return tb, nil
}

// clusterFile is the testbed's cluster file: each server host runs a full
// NATS member and its share of the parameter servers, h1 the coordinator
// too; each worker host its workers, one core each, with metrics from port
// 9300 up, and with LeafNATS a leaf NATS server (the leaves spread over
// the full members, cluster.File.NATSLeafRemotesFor).
func clusterFile(nt *netemu.Net, l Layout, dir, key, knownHosts string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "name: scale\nssh: {user: root, key: %s, known_hosts: %s}\n", key, knownHosts)
	if len(l.DataRoots) > 0 {
		fmt.Fprintf(&b, "data_roots: [%s]\n", strings.Join(l.DataRoots, ", "))
	}
	b.WriteString("hosts:\n")
	for i, h := range nt.Hosts {
		data := filepath.Join(dir, h.Name)
		if i < l.serverHosts() {
			roles := "[nats, paramserver]"
			if i == 0 {
				roles = "[nats, coordinator, paramserver]"
			}
			fmt.Fprintf(&b, "  - {name: %s, address: %s, data_dir: %s, roles: %s, paramserver: {count: %d}}\n",
				h.Name, h.Addr, data, roles, l.Servers/l.serverHosts())
			continue
		}
		roles, nats := "[worker]", ""
		if l.RoutedNATS {
			roles = "[nats, worker]"
		}
		if l.LeafNATS {
			roles, nats = "[nats, worker]", ", nats: {leaf: true}"
		}
		fmt.Fprintf(&b, "  - {name: %s, address: %s, data_dir: %s, roles: %s%s, worker: {count: %d, threads: 1, metrics_port: %d}}\n",
			h.Name, h.Addr, data, roles, nats, l.WorkersPerHost, metricsPort)
	}
	return b.String()
}

// WorkerMetrics returns the metrics URLs of every worker.
func (tb *Testbed) WorkerMetrics() []string {
	var urls []string
	for _, h := range tb.Net.Hosts[tb.Layout.serverHosts():] {
		for i := range tb.Layout.WorkersPerHost {
			urls = append(urls, "http://"+h.Addr+":"+strconv.Itoa(metricsPort+i)+"/metrics")
		}
	}
	return urls
}

// PIDs returns the process ids of the processes of kind (the NATS server,
// the parameter servers), from the launcher's pid files.
func (tb *Testbed) PIDs(kind cluster.Kind) []int {
	var pids []int
	for _, p := range tb.File.Processes() {
		if p.Kind == kind {
			pids = append(pids, tb.pidsOf(p)...)
		}
	}
	return pids
}

// pidsOf returns p's process id from its pid file (none when it has none).
func (tb *Testbed) pidsOf(p cluster.Process) []int {
	for _, h := range tb.File.Hosts {
		if h.Name != p.Host {
			continue
		}
		b, err := os.ReadFile(cluster.Layout{DataDir: h.DataDir}.PID(p.ID))
		if err != nil {
			return nil
		}
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			return []int{pid}
		}
	}
	return nil
}

// killLeftovers kills the cluster's processes Down did not stop (a host it
// could not reach): those whose pid file names a live process marked with
// the process's id.
func (tb *Testbed) killLeftovers() {
	for _, p := range tb.File.Processes() {
		for _, pid := range tb.pidsOf(p) {
			env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
			if err == nil && bytes.Contains(env, []byte(cluster.ProcessEnv+"="+p.ID+"\x00")) {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
}

// Close stops the cluster (Down, purging its files), the SSH servers and
// the hosts.
func (tb *Testbed) Close(ctx context.Context) error {
	var errs []error
	if tb.File != nil && tb.opts.SecretsDir != "" {
		errs = append(errs, cluster.Down(ctx, tb.File, tb.opts, false))
		tb.killLeftovers()
	}
	for _, stop := range tb.stops {
		stop()
	}
	tb.stops = nil
	if tb.Net != nil {
		errs = append(errs, tb.Net.Close())
		tb.Net = nil
	}
	return errors.Join(errs...)
}
