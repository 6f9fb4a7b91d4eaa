package cluster

import (
	"path"
	"strconv"
	"strings"

	"github.com/maas-ml/maas/internal/auth"
)

// Layout is where the launcher puts things under a host's data_dir:
//
//	<data_dir>/bin/maas          the binary
//	<data_dir>/secrets/          the host's secrets (with --secrets)
//	<data_dir>/<id>/run          the process's start script
//	<data_dir>/<id>/log, pid     its output and process id
//	<data_dir>/<id>/data/        its state (JetStream, the Raft log)
type Layout struct {
	DataDir string
}

// Bin is the path of the maas binary on the host.
func (l Layout) Bin() string { return path.Join(l.DataDir, "bin", "maas") }

// Secrets is the directory of the host's secrets.
func (l Layout) Secrets() string { return path.Join(l.DataDir, "secrets") }

// Dir is process id's directory.
func (l Layout) Dir(id string) string { return path.Join(l.DataDir, id) }

// Run is process id's start script.
func (l Layout) Run(id string) string { return path.Join(l.Dir(id), "run") }

// Log is process id's standard output and error.
func (l Layout) Log(id string) string { return path.Join(l.Dir(id), "log") }

// PID is the file holding process id's process id.
func (l Layout) PID(id string) string { return path.Join(l.Dir(id), "pid") }

// State is process id's state directory.
func (l Layout) State(id string) string { return path.Join(l.Dir(id), "data") }

// UnitName is the systemd unit of process id.
func UnitName(id string) string { return "maas-" + id + ".service" }

// UnitPath is where the unit file of process id is installed.
func UnitPath(id string) string { return "/etc/systemd/system/" + UnitName(id) }

// ProcessEnv names the environment variable that tells a launched process
// by its id; the launcher recognizes its processes by it, so that a pid
// file left over from a reused pid is not taken for a live process.
const ProcessEnv = "MAAS_PROCESS"

// Args is the command line of process p (after the binary's name): its
// role's subcommand and flags, from the cluster file; secured adds the
// flags that give it its credentials from the host's secrets (see
// securityArgs).
//
// Every process is told its own host's NATS server first and then every
// full member (NATSServersFor; the client tries them in that order); the
// NATS servers and serve listen on every interface, the
// coordinators on the host's address, which is also where the other
// coordinators reach them.
func (f *File) Args(p Process, secured bool) []string {
	h := f.host(p.Host)
	l := Layout{DataDir: h.DataDir}
	natsURLs := strings.Join(f.NATSServersFor(p), ",")
	var a []string
	switch p.Kind {
	case KindNATS:
		if p.Leaf {
			a = []string{"nats", "--host", "0.0.0.0", "--port", strconv.Itoa(p.Port(PortClient)),
				"--store-dir", "", "--name", p.ID, "--leaf-remotes", strings.Join(f.NATSLeafRemotesFor(p), ",")}
			break
		}
		a = []string{"nats", "--host", "0.0.0.0", "--port", strconv.Itoa(p.Port(PortClient)),
			"--store-dir", l.State(p.ID), "--name", p.ID}
		if f.hasLeaf() {
			a = append(a, "--leaf-port", strconv.Itoa(p.Port(PortLeaf)))
		}
		var routes []string
		own := "nats://" + p.Addr(PortRoute)
		for _, r := range f.NATSRoutes() {
			if r != own {
				routes = append(routes, r)
			}
		}
		if len(routes) > 0 {
			a = append(a, "--cluster-name", f.Name, "--cluster-port", strconv.Itoa(p.Port(PortRoute)),
				"--routes", strings.Join(routes, ","))
		}
	case KindCoordinator:
		a = []string{"coordinator", "--id", p.ID, "--raft", p.Addr(PortRaft), "--api", p.Addr(PortHTTP),
			"--data-dir", l.State(p.ID), "--nats", natsURLs}
		if peers := f.RaftPeers(); len(peers) > 0 && peers[0].ID != p.ID {
			a = append(a, "--bootstrap=false", "--join", peers[0].HTTPAddr)
		}
		a = append(a, f.DataRootsArgs()...)
		if u := f.serveFor(h, secured); u != "" {
			a = append(a, "--serve-url", u)
		}
	case KindParamServer:
		a = []string{"paramserver", "--id", p.ID, "--host", p.Host, "--nats", natsURLs}
		a = append(a, metricsArgs(p)...)
	case KindWorker:
		a = []string{"worker", "--id", p.ID, "--host", p.Host, "--nats", natsURLs}
		if p.Threads > 0 {
			a = append(a, "--threads", strconv.Itoa(p.Threads))
		}
		a = append(a, metricsArgs(p)...)
	case KindServe:
		scheme := "http://"
		if secured {
			scheme = "https://"
		}
		a = []string{"serve", "--addr", "0.0.0.0:" + strconv.Itoa(p.Port(PortHTTP)),
			"--server", scheme + f.coordinatorFor(h), "--nats", natsURLs}
	}
	if !secured {
		return a
	}
	return append(a, securityArgs(p, l)...)
}

// metricsArgs serve p's Prometheus metrics on the host's address at its
// metrics port, when the cluster file gives it one.
func metricsArgs(p Process) []string {
	if p.Port(PortMetrics) == 0 {
		return nil
	}
	return []string{"--metrics-addr", p.Addr(PortMetrics)}
}

// securityArgs are the flags that give process p its credentials from
// its host's secrets directory (l.Secrets(), see hostSecrets):
//
//	nats         TLS with the host's certificate; routes and leaf
//	             connections over mutual TLS (the cluster's CA); only the
//	             users of nats-users.conf; a leaf connects as its own user
//	             (<id>.nk)
//	every client its own NATS nkey seed (<id>.nk), TLS trusting ca.crt
//	coordinator  API over HTTPS with tokens.json; Raft over mutual TLS;
//	             joins over HTTPS with admin.token
//	serve        HTTPS with tokens.json; reads the model index over HTTPS
//	             with read.token
func securityArgs(p Process, l Layout) []string {
	sec := func(name string) string { return path.Join(l.Secrets(), name) }
	cert, key, ca := sec(HostCertFile(p.Host)), sec(HostKeyFile(p.Host)), sec(CACertFile)
	if p.Kind == KindNATS {
		a := []string{"--tls-cert", cert, "--tls-key", key, "--route-ca", ca, "--auth", sec(NATSUsersFile)}
		if p.Leaf {
			a = append(a, "--leaf-seed", sec(SeedFile(p.ID)))
		}
		return a
	}
	a := []string{"--nats-seed", sec(SeedFile(p.ID)), "--nats-ca", ca}
	switch p.Kind {
	case KindCoordinator:
		a = append(a, "--tls-cert", cert, "--tls-key", key, "--tokens", sec(TokensFile), "--raft-ca", ca,
			"--join-ca", ca, "--join-token-file", sec(TokenFile(auth.RoleAdmin)))
	case KindServe:
		a = append(a, "--tls-cert", cert, "--tls-key", key, "--tokens", sec(TokensFile),
			"--server-ca", ca, "--server-token-file", sec(TokenFile(auth.RoleRead)))
	}
	return a
}

// coordinatorFor is the API address serve on host h asks for the model
// index: its own host's coordinator, else the first.
func (f *File) coordinatorFor(h *Host) string {
	peers := f.RaftPeers()
	for _, c := range peers {
		if c.ID == h.Name+"-"+string(KindCoordinator) {
			return c.HTTPAddr
		}
	}
	if len(peers) == 0 { // not a valid file; Validate requires one
		return "127.0.0.1:" + strconv.Itoa(DefaultCoordHTTPPort)
	}
	return peers[0].HTTPAddr
}

// serveFor is the URL of the serving endpoint the dashboard of the
// coordinator on host h tries models on: its own host's, else the first;
// "" when the cluster serves nothing.
func (f *File) serveFor(h *Host, secured bool) string {
	serves := f.ProcessesOf(KindServe)
	if len(serves) == 0 {
		return ""
	}
	p := serves[0]
	for _, s := range serves {
		if s.Host == h.Name {
			p = s
			break
		}
	}
	scheme := "http://"
	if secured {
		scheme = "https://"
	}
	return scheme + p.Addr(PortHTTP)
}

// host is the host called name, or a zero host (never for a name
// Processes returned).
func (f *File) host(name string) *Host {
	for i := range f.Hosts {
		if f.Hosts[i].Name == name {
			return &f.Hosts[i]
		}
	}
	return &Host{Name: name, DataDir: DefaultDataDir}
}

// RunScript is the shell script that starts process p on its host: it
// records its pid, marks the process with ProcessEnv and becomes the maas
// binary with p's arguments (secured: with its credentials).
func (f *File) RunScript(p Process, secured bool) string {
	l := Layout{DataDir: f.host(p.Host).DataDir}
	var b strings.Builder
	b.WriteString("#!/bin/sh\n")
	b.WriteString("# Written by maas cluster up: process " + p.ID + " of cluster " + f.Name + ".\n")
	b.WriteString("cd " + shq(l.Dir(p.ID)) + " || exit 1\n")
	b.WriteString("echo $$ >pid\n")
	b.WriteString(ProcessEnv + "=" + shq(p.ID) + "; export " + ProcessEnv + "\n")
	b.WriteString("exec " + shq(l.Bin()))
	for _, a := range f.Args(p, secured) {
		b.WriteString(" " + shq(a))
	}
	b.WriteString("\n")
	return b.String()
}

// Unit is the systemd unit file of process p: it runs p's start script,
// restarts it when it fails, and appends its output to its log.
func (f *File) Unit(p Process) string {
	l := Layout{DataDir: f.host(p.Host).DataDir}
	return "[Unit]\n" +
		"Description=maas " + string(p.Kind) + " " + p.ID + " (cluster " + f.Name + ")\n" +
		"After=network-online.target\n" +
		"Wants=network-online.target\n" +
		"\n[Service]\n" +
		"Type=simple\n" +
		"ExecStart=" + l.Run(p.ID) + "\n" +
		"WorkingDirectory=" + l.Dir(p.ID) + "\n" +
		"Restart=on-failure\n" +
		"RestartSec=2\n" +
		"KillSignal=SIGTERM\n" +
		"TimeoutStopSec=10\n" +
		"StandardOutput=append:" + l.Log(p.ID) + "\n" +
		"StandardError=append:" + l.Log(p.ID) + "\n" +
		"\n[Install]\n" +
		"WantedBy=multi-user.target\n"
}

// Stage is a set of processes the launcher starts together, after the
// stages before it are ready.
type Stage struct {
	Name      string
	Processes []Process
}

// Stages are the cluster's processes in start order: the full NATS
// members, the leaf NATS servers (each then finds the member it is to
// connect to first listening: NATSLeafRemotesFor), the first coordinator (which bootstraps Raft), the other coordinators (which
// join it), the parameter servers, the workers, and serve. Empty stages
// are left out; down walks them backwards.
func (f *File) Stages() []Stage {
	coords := f.ProcessesOf(KindCoordinator)
	var full, leaves []Process
	for _, p := range f.ProcessesOf(KindNATS) {
		if p.Leaf {
			leaves = append(leaves, p)
		} else {
			full = append(full, p)
		}
	}
	all := []Stage{
		{"nats", full},
		{"leaf nats", leaves},
		{"first coordinator", coords[:min(1, len(coords))]},
		{"other coordinators", coords[min(1, len(coords)):]},
		{"parameter servers", f.ProcessesOf(KindParamServer)},
		{"workers", f.ProcessesOf(KindWorker)},
		{"serve", f.ProcessesOf(KindServe)},
	}
	var stages []Stage
	for _, s := range all {
		if len(s.Processes) > 0 {
			stages = append(stages, s)
		}
	}
	return stages
}
