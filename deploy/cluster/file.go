package cluster

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Defaults of the cluster file.
const (
	DefaultSSHPort        = 22
	DefaultKnownHosts     = "~/.ssh/known_hosts"
	DefaultDataDir        = "/var/lib/maas"
	DefaultNATSPort       = 4222
	DefaultNATSRoutePort  = 6222
	DefaultNATSLeafPort   = 7422
	DefaultCoordHTTPPort  = 7070
	DefaultCoordRaftPort  = 7000
	DefaultServeHTTPPort  = 8080
	defaultProcessesCount = 1
)

// File is a cluster file: the cluster's name, how to reach its hosts and
// what each host runs.
//
//	name: lab
//	data_roots: [/srv/datasets]
//	ssh: {user: maas, key: ~/.ssh/id_ed25519}
//	hosts:
//	  - name: node1
//	    address: 10.0.0.11
//	    roles: [nats, coordinator, paramserver, worker]
//	    worker: {count: 2, threads: 8}
//
// Parse fills in the defaults; a File built in Go may leave them zero.
type File struct {
	// Name names the cluster (letters, digits, '-' and '_'). It is in the
	// CA's common name and the default secrets directory, <name>-secrets.
	Name string `yaml:"name"`
	// SecretsDir is where `maas cluster init` writes the secrets when no
	// --out is given. Optional; default ./<name>-secrets. A relative path
	// is relative to the current directory.
	SecretsDir string `yaml:"secrets_dir,omitempty"`
	// DataRoots are the directories, absolute paths on the hosts, that a
	// job spec may read datasets from. Optional; none means no job may
	// name a local dataset directory (jobs name data pushed with `maas
	// data push` instead).
	DataRoots []string `yaml:"data_roots,omitempty"`
	// SSH is how the launcher logs in to every host, unless a host
	// overrides it.
	SSH SSH `yaml:"ssh"`
	// Hosts are the machines of the cluster, at least one.
	Hosts []Host `yaml:"hosts"`
}

// SSH is how the launcher reaches the hosts. Key or Agent must be given.
type SSH struct {
	// User to log in as. Optional; default the user running maas.
	User string `yaml:"user,omitempty"`
	// Key is the path of a private key file on the machine running maas.
	Key string `yaml:"key,omitempty"`
	// Agent uses the keys of the running ssh-agent ($SSH_AUTH_SOCK). With
	// Key given too, the key file is tried first.
	Agent bool `yaml:"agent,omitempty"`
	// KnownHosts is the known_hosts file the hosts' keys are checked
	// against; a host not in it is refused. Default ~/.ssh/known_hosts.
	KnownHosts string `yaml:"known_hosts,omitempty"`
	// Port is the SSH port, default 22.
	Port int `yaml:"port,omitempty"`
}

// HostSSH overrides the cluster's SSH settings for one host; empty fields
// keep the cluster's.
type HostSSH struct {
	User string `yaml:"user,omitempty"`
	Key  string `yaml:"key,omitempty"`
	Port int    `yaml:"port,omitempty"`
}

// Host is one machine and the roles it runs. A role's options block (nats,
// coordinator, paramserver, worker, serve) is optional and only allowed
// when the role is in Roles.
type Host struct {
	// Name names the host in the cluster (letters, digits, '-' and '_');
	// process ids start with it. It is also a DNS name in the host's
	// certificate.
	Name string `yaml:"name"`
	// Address is the host's IP address or DNS name: where the launcher and
	// the other hosts reach it, and a name in its certificate.
	Address string `yaml:"address"`
	// SSH overrides the cluster's user, key or port for this host.
	SSH HostSSH `yaml:"ssh,omitempty"`
	// DataDir is where the host's processes keep their state (NATS
	// JetStream, the Raft log) and where the launcher puts the binary and
	// the host's secrets. An absolute path; default /var/lib/maas.
	DataDir string `yaml:"data_dir,omitempty"`
	// Roles are the roles the host runs, each at most once: nats,
	// coordinator, paramserver, worker, serve.
	Roles []Kind `yaml:"roles"`

	NATS        *NATSOptions        `yaml:"nats,omitempty"`
	Coordinator *CoordinatorOptions `yaml:"coordinator,omitempty"`
	ParamServer *ParamServerOptions `yaml:"paramserver,omitempty"`
	Worker      *WorkerOptions      `yaml:"worker,omitempty"`
	Serve       *ServeOptions       `yaml:"serve,omitempty"`
}

// NATSOptions are the ports and the kind of the host's NATS server.
//
// A host's server is a full member of the cluster's NATS (routed to the
// other full members, with JetStream) or, with Leaf, a leaf node of them:
// no JetStream of its own, connected to every full member's leaf port.
// Give each worker host a leaf server and its processes talk to it: a
// message then crosses the host's link once however many of the host's
// processes receive it (θ_{t+1} once per host, not once per worker).
type NATSOptions struct {
	// Port is the client port, default 4222.
	Port int `yaml:"port,omitempty"`
	// ClusterPort is the port the other full members route to, default
	// 6222 (not used by a leaf).
	ClusterPort int `yaml:"cluster_port,omitempty"`
	// LeafPort is where a full member accepts the leaf servers' connections,
	// default 7422; it listens only when the cluster has a leaf.
	LeafPort int `yaml:"leaf_port,omitempty"`
	// Leaf makes the host's server a leaf node of the full members.
	Leaf bool `yaml:"leaf,omitempty"`
}

// CoordinatorOptions are the ports of the host's coordinator.
type CoordinatorOptions struct {
	// HTTPPort serves the API (the CLI talks to it), default 7070.
	HTTPPort int `yaml:"http_port,omitempty"`
	// RaftPort is where the other coordinators reach it, default 7000.
	RaftPort int `yaml:"raft_port,omitempty"`
}

// ParamServerOptions say how many parameter servers the host runs.
type ParamServerOptions struct {
	// Count is the number of parameter-server processes, default 1.
	Count int `yaml:"count,omitempty"`
	// MetricsPort, when not 0, is the Prometheus metrics port of the
	// first process; process i (from 1) listens on MetricsPort+i-1.
	MetricsPort int `yaml:"metrics_port,omitempty"`
}

// WorkerOptions say how many workers the host runs and on how many cores.
type WorkerOptions struct {
	// Count is the number of worker processes, default 1.
	Count int `yaml:"count,omitempty"`
	// Threads is the number of cores each worker uses; 0 (the default)
	// uses them all.
	Threads int `yaml:"threads,omitempty"`
	// MetricsPort, when not 0, is the Prometheus metrics port of the
	// first process; process i (from 1) listens on MetricsPort+i-1.
	MetricsPort int `yaml:"metrics_port,omitempty"`
}

// ServeOptions are the port of the host's serving endpoint.
type ServeOptions struct {
	// HTTPPort serves the Open Inference Protocol, default 8080.
	HTTPPort int `yaml:"http_port,omitempty"`
}

// Load reads and checks the cluster file at path.
func Load(path string) (*File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	f, err := Parse(b)
	if err != nil {
		return nil, &fileError{path: path, err: err}
	}
	return f, nil
}

// fileError is an error in the cluster file at path; several problems are
// listed one a line under the path.
type fileError struct {
	path string
	err  error
}

func (e *fileError) Error() string {
	msg := e.err.Error()
	if strings.Contains(msg, "\n") {
		return e.path + ":\n  " + strings.ReplaceAll(msg, "\n", "\n  ")
	}
	return e.path + ": " + msg
}

func (e *fileError) Unwrap() error { return e.err }

// Parse decodes a cluster file, fills in its defaults and validates it. A
// field the file format does not have is an error naming it.
func Parse(b []byte) (*File, error) {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var f File
	if err := dec.Decode(&f); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%w: the file is empty", ErrInvalid)
		}
		var te *yaml.TypeError
		if errors.As(err, &te) {
			return nil, decodeErrors(te)
		}
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	f.SetDefaults()
	if err := f.Validate(); err != nil {
		return nil, err
	}
	return &f, nil
}

// unknownField matches yaml's message for a field the type lacks.
var unknownField = regexp.MustCompile(`field (\S+) not found in type cluster\.(\w+)`)

// yamlTypes name the types of this file in messages.
var yamlTypes = map[string]string{
	"File": "the cluster file", "SSH": "ssh", "HostSSH": "a host's ssh", "Host": "a host",
	"NATSOptions": "nats", "CoordinatorOptions": "coordinator", "ParamServerOptions": "paramserver",
	"WorkerOptions": "worker", "ServeOptions": "serve",
}

// decodeErrors turns yaml's errors into ErrInvalid errors, one per line,
// in the words of the file rather than of Go.
func decodeErrors(te *yaml.TypeError) error {
	errs := make([]error, len(te.Errors))
	for i, msg := range te.Errors {
		msg = unknownField.ReplaceAllStringFunc(msg, func(m string) string {
			sub := unknownField.FindStringSubmatch(m)
			where, ok := yamlTypes[sub[2]]
			if !ok {
				where = sub[2]
			}
			return fmt.Sprintf("unknown field %q in %s", sub[1], where)
		})
		errs[i] = fmt.Errorf("%w: %s", ErrInvalid, msg)
	}
	return errors.Join(errs...)
}

// SetDefaults replaces the zero values of the optional fields by their
// defaults, so that the File reads as the cluster will run. Options blocks
// of the roles a host runs are created when absent.
func (f *File) SetDefaults() {
	if f.SSH.Port == 0 {
		f.SSH.Port = DefaultSSHPort
	}
	if f.SSH.KnownHosts == "" {
		f.SSH.KnownHosts = DefaultKnownHosts
	}
	for i := range f.Hosts {
		h := &f.Hosts[i]
		if h.DataDir == "" {
			h.DataDir = DefaultDataDir
		}
		for _, k := range h.Roles {
			switch k {
			case KindNATS:
				h.NATS = orNew(h.NATS)
				h.NATS.Port = orDefault(h.NATS.Port, DefaultNATSPort)
				h.NATS.ClusterPort = orDefault(h.NATS.ClusterPort, DefaultNATSRoutePort)
				h.NATS.LeafPort = orDefault(h.NATS.LeafPort, DefaultNATSLeafPort)
			case KindCoordinator:
				h.Coordinator = orNew(h.Coordinator)
				h.Coordinator.HTTPPort = orDefault(h.Coordinator.HTTPPort, DefaultCoordHTTPPort)
				h.Coordinator.RaftPort = orDefault(h.Coordinator.RaftPort, DefaultCoordRaftPort)
			case KindParamServer:
				h.ParamServer = orNew(h.ParamServer)
				h.ParamServer.Count = orDefault(h.ParamServer.Count, defaultProcessesCount)
			case KindWorker:
				h.Worker = orNew(h.Worker)
				h.Worker.Count = orDefault(h.Worker.Count, defaultProcessesCount)
			case KindServe:
				h.Serve = orNew(h.Serve)
				h.Serve.HTTPPort = orDefault(h.Serve.HTTPPort, DefaultServeHTTPPort)
			}
		}
	}
}

// DataRootsFlag is the coordinator flag that holds job specs to the
// data roots: a spec whose dataset.path lies elsewhere is refused.
const DataRootsFlag = "--data-roots"

// DataRootsArgs are the coordinator arguments for the file's data roots,
// `--data-roots /a,/b`; with none, `--data-roots ""`: no job may name a
// dataset path on the hosts (it names pushed data instead).
func (f *File) DataRootsArgs() []string {
	return []string{DataRootsFlag, strings.Join(f.DataRoots, ",")}
}

// SSHFor returns the SSH settings for host h: the cluster's, overridden
// by the host's.
func (f *File) SSHFor(h *Host) SSH {
	s := f.SSH
	if h.SSH.User != "" {
		s.User = h.SSH.User
	}
	if h.SSH.Key != "" {
		s.Key = h.SSH.Key
	}
	s.Port = orDefault(orDefault(h.SSH.Port, s.Port), DefaultSSHPort)
	if s.KnownHosts == "" {
		s.KnownHosts = DefaultKnownHosts
	}
	return s
}

// Has reports whether the host runs role k.
func (h *Host) Has(k Kind) bool {
	for _, r := range h.Roles {
		if r == k {
			return true
		}
	}
	return false
}

// orNew returns p, or a new zero T when p is nil (a role's options block is
// optional).
func orNew[T any](p *T) *T {
	if p == nil {
		return new(T)
	}
	return p
}

// orDefault is v, or d when v is 0.
func orDefault(v, d int) int {
	if v == 0 {
		return d
	}
	return v
}
