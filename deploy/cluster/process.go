package cluster

import (
	"net"
	"strconv"
)

// Kind is a role a host runs: the maas subcommand of its processes.
type Kind string

// The roles, in the order the launcher starts them.
const (
	KindNATS        Kind = "nats"
	KindCoordinator Kind = "coordinator"
	KindParamServer Kind = "paramserver"
	KindWorker      Kind = "worker"
	KindServe       Kind = "serve"
)

// Kinds lists every role in start order.
var Kinds = []Kind{KindNATS, KindCoordinator, KindParamServer, KindWorker, KindServe}

// Names of the ports a process listens on.
const (
	PortClient  = "client"  // NATS clients
	PortRoute   = "route"   // NATS routes from the other NATS servers
	PortLeaf    = "leaf"    // NATS leaf connections from the leaf servers
	PortHTTP    = "http"    // coordinator API, serving endpoint
	PortRaft    = "raft"    // coordinator Raft transport
	PortMetrics = "metrics" // Prometheus metrics of parameter servers and workers
)

// Process is one maas process the cluster runs.
type Process struct {
	// Host and Address are the name and address of the host it runs on.
	Host    string
	Address string
	Kind    Kind
	// Index counts the host's processes of Kind from 1.
	Index int
	// ID names the process in the cluster: <host>-<role> for nats,
	// coordinator and serve, <host>-<role>-<index> for paramserver and
	// worker. It is the member id, the Raft server id and the NATS user.
	ID string
	// Threads is a worker's number of cores; 0 uses them all.
	Threads int
	// Leaf marks a NATS server that is a leaf node of the full members.
	Leaf bool
	// Ports are the ports it listens on, by name (PortClient...).
	Ports []Port
}

// Port is a port a process listens on.
type Port struct {
	Name   string
	Number int
}

// Port returns the number of the port called name, or 0 when the process
// has none.
func (p Process) Port(name string) int {
	for _, pt := range p.Ports {
		if pt.Name == name {
			return pt.Number
		}
	}
	return 0
}

// Addr is host:port of the port called name, at the host's address.
func (p Process) Addr(name string) string {
	return net.JoinHostPort(p.Address, strconv.Itoa(p.Port(name)))
}

// Processes lists every process of the cluster, host by host in file
// order and, on a host, role by role in start order (Kinds).
func (f *File) Processes() []Process {
	var ps []Process
	for i := range f.Hosts {
		ps = append(ps, f.hostProcesses(&f.Hosts[i])...)
	}
	return ps
}

// ProcessesOf lists the cluster's processes of role k.
func (f *File) ProcessesOf(k Kind) []Process {
	var ps []Process
	for _, p := range f.Processes() {
		if p.Kind == k {
			ps = append(ps, p)
		}
	}
	return ps
}

// hostProcesses lists host h's processes, reading defaults for the options
// left zero. A full NATS member has a leaf port when the cluster has a
// leaf server.
func (f *File) hostProcesses(h *Host) []Process {
	leaves := false
	for i := range f.Hosts {
		if o := f.Hosts[i].NATS; o != nil && o.Leaf && f.Hosts[i].Has(KindNATS) {
			leaves = true
		}
	}
	var ps []Process
	add := func(k Kind, index int, ports ...Port) {
		id := h.Name + "-" + string(k)
		if k == KindParamServer || k == KindWorker {
			id += "-" + strconv.Itoa(index)
		}
		var nonzero []Port
		for _, p := range ports {
			if p.Number != 0 {
				nonzero = append(nonzero, p)
			}
		}
		ps = append(ps, Process{Host: h.Name, Address: h.Address, Kind: k, Index: index, ID: id, Ports: nonzero})
	}
	// counted adds n processes of role k, the i-th with metrics port
	// first+i-1 when first is not 0.
	counted := func(k Kind, n, first int) {
		for i := 1; i <= orDefault(n, defaultProcessesCount); i++ {
			metrics := 0
			if first != 0 {
				metrics = first + i - 1
			}
			add(k, i, Port{PortMetrics, metrics})
		}
	}
	for _, k := range Kinds {
		if !h.Has(k) {
			continue
		}
		switch k {
		case KindNATS:
			o := deref(h.NATS)
			if o.Leaf {
				add(k, 1, Port{PortClient, orDefault(o.Port, DefaultNATSPort)})
				ps[len(ps)-1].Leaf = true
				break
			}
			leaf := 0
			if leaves {
				leaf = orDefault(o.LeafPort, DefaultNATSLeafPort)
			}
			add(k, 1, Port{PortClient, orDefault(o.Port, DefaultNATSPort)},
				Port{PortRoute, orDefault(o.ClusterPort, DefaultNATSRoutePort)}, Port{PortLeaf, leaf})
		case KindCoordinator:
			o := deref(h.Coordinator)
			add(k, 1, Port{PortHTTP, orDefault(o.HTTPPort, DefaultCoordHTTPPort)},
				Port{PortRaft, orDefault(o.RaftPort, DefaultCoordRaftPort)})
		case KindParamServer:
			o := deref(h.ParamServer)
			counted(k, o.Count, o.MetricsPort)
		case KindWorker:
			o := deref(h.Worker)
			n := len(ps)
			counted(k, o.Count, o.MetricsPort)
			for i := n; i < len(ps); i++ {
				ps[i].Threads = o.Threads
			}
		case KindServe:
			o := deref(h.Serve)
			add(k, 1, Port{PortHTTP, orDefault(o.HTTPPort, DefaultServeHTTPPort)})
		}
	}
	return ps
}

// deref is *p, or the zero T when p is nil.
func deref[T any](p *T) T {
	if p == nil {
		var zero T
		return zero
	}
	return *p
}

// NATSServers are the client URLs of the cluster's full NATS members
// (nats://address:port), in file order.
func (f *File) NATSServers() []string { return f.fullMembers(PortClient) }

// NATSServersFor are the NATS URLs process p connects to, tried in this
// order: its own host's server first (a leaf or a full member), then the
// full members, the list turned by the process's position in the file so
// that the processes of hosts without a server spread over them.
func (f *File) NATSServersFor(p Process) []string {
	full := f.NATSServers()
	var urls []string
	for _, n := range f.ProcessesOf(KindNATS) {
		if n.Host == p.Host {
			urls = append(urls, "nats://"+n.Addr(PortClient))
		}
	}
	turn := 0
	for i, q := range f.Processes() {
		if q.ID == p.ID {
			turn = i
		}
	}
	for i := range full {
		if u := full[(i+turn)%len(full)]; len(urls) == 0 || urls[0] != u {
			urls = append(urls, u)
		}
	}
	return urls
}

// NATSRoutes are the route URLs of the cluster's full NATS members
// (nats://address:cluster_port); each is given them all and skips its
// own.
func (f *File) NATSRoutes() []string { return f.fullMembers(PortRoute) }

// NATSLeafRemotes are the leaf URLs of the full members
// (nats://address:leaf_port), which every leaf server connects to.
func (f *File) NATSLeafRemotes() []string { return f.fullMembers(PortLeaf) }

// NATSLeafRemotesFor are the leaf URLs leaf server p connects to, tried in
// this order: the full members turned by p's place among the leaves, so
// that the n-th leaf starts at the n-th full member (round robin). Each
// full member then relays the traffic of an equal share of the hosts: with
// parameter servers on several hosts, no one host's link carries every
// worker host's pushes and θ.
func (f *File) NATSLeafRemotesFor(p Process) []string {
	full := f.NATSLeafRemotes()
	turn := 0
	for _, q := range f.ProcessesOf(KindNATS) {
		if q.ID == p.ID {
			break
		}
		if q.Leaf {
			turn++
		}
	}
	urls := make([]string, 0, len(full))
	for i := range full {
		urls = append(urls, full[(i+turn)%len(full)])
	}
	return urls
}

// fullMembers are nats://address:port of the full NATS members' port
// called name.
func (f *File) fullMembers(name string) []string {
	var urls []string
	for _, p := range f.ProcessesOf(KindNATS) {
		if !p.Leaf {
			urls = append(urls, "nats://"+p.Addr(name))
		}
	}
	return urls
}

// hasLeaf reports whether a host runs a leaf NATS server.
func (f *File) hasLeaf() bool {
	for _, p := range f.ProcessesOf(KindNATS) {
		if p.Leaf {
			return true
		}
	}
	return false
}

// RaftPeer is one coordinator of the Raft cluster.
type RaftPeer struct {
	// ID is the Raft server id, the coordinator's process id.
	ID string
	// RaftAddr is where the other coordinators reach it (address:raft_port).
	RaftAddr string
	// HTTPAddr is its API (address:http_port).
	HTTPAddr string
}

// RaftPeers are the cluster's coordinators in file order; the launcher
// bootstraps the first and joins the others to it.
func (f *File) RaftPeers() []RaftPeer {
	var peers []RaftPeer
	for _, p := range f.ProcessesOf(KindCoordinator) {
		peers = append(peers, RaftPeer{ID: p.ID, RaftAddr: p.Addr(PortRaft), HTTPAddr: p.Addr(PortHTTP)})
	}
	return peers
}
