package cluster

import (
	"errors"
	"fmt"
	"net"
	"path"
	"strings"

	"github.com/maas-ml/maas/internal/wire"
)

// Validate checks the cluster file and returns every problem it finds,
// joined, each a *FieldError naming the field (errors.Is(err, ErrInvalid)
// holds). Zero optional fields stand for their defaults.
func (f *File) Validate() error {
	v := &validator{}
	v.id("name", f.Name)
	for i, r := range f.DataRoots {
		v.absPath(fmt.Sprintf("data_roots[%d]", i), r)
	}
	v.port("ssh.port", f.SSH.Port)
	if len(f.Hosts) == 0 {
		v.add("hosts", "no hosts; list at least one")
	}
	names := map[string]int{}
	addrs := map[string]int{}
	var noKey []string
	for i := range f.Hosts {
		h := &f.Hosts[i]
		p := fmt.Sprintf("hosts[%d]", i)
		if v.id(p+".name", h.Name) {
			if j, dup := names[h.Name]; dup {
				v.add(p+".name", "%q is also hosts[%d].name", h.Name, j)
			} else {
				names[h.Name] = i
			}
		}
		if v.address(p+".address", h.Address) {
			key := normalAddress(h.Address)
			if j, dup := addrs[key]; dup {
				v.add(p+".address", "%q is also hosts[%d].address", h.Address, j)
			} else {
				addrs[key] = i
			}
		}
		if h.DataDir != "" {
			v.absPath(p+".data_dir", h.DataDir)
		}
		v.port(p+".ssh.port", h.SSH.Port)
		if h.SSH.Key == "" && f.SSH.Key == "" && !f.SSH.Agent {
			noKey = append(noKey, h.Name)
		}
		v.roles(p, h)
		v.ports(p, f, h)
	}
	if len(noKey) > 0 {
		v.add("ssh", "no key file and agent is false: set ssh.key to a private key file or ssh.agent: true (hosts without a key of their own: %s)",
			strings.Join(noKey, ", "))
	}
	v.processes(f)
	return errors.Join(v.errs...)
}

// validator collects the problems of a cluster file.
type validator struct{ errs []error }

func (v *validator) add(path, format string, args ...any) {
	v.errs = append(v.errs, &FieldError{Path: path, Msg: fmt.Sprintf(format, args...)})
}

// id checks a name used in process ids, and reports whether it is valid.
func (v *validator) id(path, s string) bool {
	switch {
	case s == "":
		v.add(path, "missing")
		return false
	case !validID(s):
		v.add(path, "%q: use letters, digits, '-' and '_' only", s)
		return false
	}
	return true
}

// validID reports whether s is a valid name: letters, digits, '-', '_'.
func validID(s string) bool {
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return s != ""
}

func (v *validator) absPath(field, p string) {
	switch {
	case !path.IsAbs(p):
		v.add(field, "%q is not an absolute path", p)
	case path.Clean(p) != p:
		v.add(field, "%q is not a clean path; write %s", p, path.Clean(p))
	}
}

// port checks a port field; 0 stands for its default.
func (v *validator) port(field string, n int) {
	if n < 0 || n > 65535 {
		v.add(field, "%d is not a port (1 to 65535)", n)
	}
}

// address checks a host address, and reports whether it is valid.
func (v *validator) address(field, a string) bool {
	switch {
	case a == "":
		v.add(field, "missing; give the host's IP address or DNS name")
		return false
	case net.ParseIP(a) == nil && !validDNSName(a):
		v.add(field, "%q is neither an IP address nor a DNS name", a)
		return false
	}
	return true
}

// validDNSName reports whether s is a host name: dot-separated labels of
// letters, digits and '-', not starting or ending with '-', the last not
// all digits.
func validDNSName(s string) bool {
	if len(s) > 253 {
		return false
	}
	labels := strings.Split(s, ".")
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for _, r := range l {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return strings.Trim(labels[len(labels)-1], "0123456789") != ""
}

// normalAddress is the form of an address compared for duplicates.
func normalAddress(a string) string {
	if ip := net.ParseIP(a); ip != nil {
		return ip.String()
	}
	return strings.ToLower(a)
}

// roles checks a host's role list and role options.
func (v *validator) roles(p string, h *Host) {
	if len(h.Roles) == 0 {
		v.add(p+".roles", "no roles; give one or more of %s", kindList())
	}
	seen := map[Kind]int{}
	for i, k := range h.Roles {
		rp := fmt.Sprintf("%s.roles[%d]", p, i)
		if !k.valid() {
			v.add(rp, "unknown role %q (want %s)", k, kindList())
			continue
		}
		if j, dup := seen[k]; dup {
			hint := ""
			if k == KindParamServer || k == KindWorker {
				hint = fmt.Sprintf("; set %s.count to run more than one", k)
			}
			v.add(rp, "role %q is listed twice (also roles[%d])%s", k, j, hint)
			continue
		}
		seen[k] = i
	}
	options := []struct {
		kind Kind
		set  bool
	}{
		{KindNATS, h.NATS != nil}, {KindCoordinator, h.Coordinator != nil}, {KindParamServer, h.ParamServer != nil},
		{KindWorker, h.Worker != nil}, {KindServe, h.Serve != nil},
	}
	for _, o := range options {
		if o.set && !h.Has(o.kind) {
			v.add(p+"."+string(o.kind), "options for %s, but %s is not in roles", o.kind, o.kind)
		}
	}
	if o := h.ParamServer; o != nil {
		v.count(p+".paramserver.count", o.Count)
	}
	if o := h.Worker; o != nil {
		v.count(p+".worker.count", o.Count)
		if o.Threads < 0 {
			v.add(p+".worker.threads", "%d; give the cores each worker uses, or 0 for all", o.Threads)
		}
	}
}

func (v *validator) count(field string, n int) {
	if n < 0 {
		v.add(field, "%d; give the number of processes, 1 or more", n)
	}
}

// ports checks a host's port fields and that no two of its listeners (and
// its SSH daemon) share a port.
func (v *validator) ports(p string, f *File, h *Host) {
	if o := h.NATS; o != nil {
		v.port(p+".nats.port", o.Port)
		v.port(p+".nats.cluster_port", o.ClusterPort)
	}
	if o := h.Coordinator; o != nil {
		v.port(p+".coordinator.http_port", o.HTTPPort)
		v.port(p+".coordinator.raft_port", o.RaftPort)
	}
	if o := h.Serve; o != nil {
		v.port(p+".serve.http_port", o.HTTPPort)
	}
	for _, c := range []struct {
		kind        Kind
		count, port int
		set         bool
	}{
		{KindParamServer, deref(h.ParamServer).Count, deref(h.ParamServer).MetricsPort, h.ParamServer != nil},
		{KindWorker, deref(h.Worker).Count, deref(h.Worker).MetricsPort, h.Worker != nil},
	} {
		if !c.set || c.port == 0 {
			continue
		}
		field := fmt.Sprintf("%s.%s.metrics_port", p, c.kind)
		if last := c.port + max(c.count, 1) - 1; c.port < 0 || last > 65535 {
			v.add(field, "%d is not a port, or its %d processes would need ports up to %d (the last port is 65535)", c.port, max(c.count, 1), last)
		}
	}

	type user struct{ who, field string }
	used := map[int]user{}
	sshPort := f.SSHFor(h).Port
	used[sshPort] = user{"sshd", "ssh.port"}
	for _, proc := range f.hostProcesses(h) {
		for _, pt := range proc.Ports {
			u := user{proc.ID + " " + pt.Name, portField(proc, pt)}
			if prev, clash := used[pt.Number]; clash {
				v.add(p, "port %d is used by both %s (%s) and %s (%s)", pt.Number, prev.who, prev.field, u.who, u.field)
				continue
			}
			used[pt.Number] = u
		}
	}
}

// portField names the field that sets port pt of process proc.
func portField(proc Process, pt Port) string {
	switch pt.Name {
	case PortClient:
		return "nats.port"
	case PortRoute:
		return "nats.cluster_port"
	case PortRaft:
		return "coordinator.raft_port"
	case PortHTTP:
		return string(proc.Kind) + ".http_port"
	case PortMetrics:
		if proc.Index > 1 {
			return fmt.Sprintf("%s.metrics_port+%d", proc.Kind, proc.Index-1)
		}
		return string(proc.Kind) + ".metrics_port"
	}
	return pt.Name
}

// processes checks the cluster as a whole: the roles it must have, the
// number of coordinators, and the process ids.
func (v *validator) processes(f *File) {
	if len(f.Hosts) == 0 {
		return
	}
	count := map[Kind]int{}
	ids := map[string]string{}
	for i := range f.Hosts {
		p := fmt.Sprintf("hosts[%d]", i)
		for _, proc := range f.hostProcesses(&f.Hosts[i]) {
			count[proc.Kind]++
			if !validID(proc.Host) {
				continue // the host's name is reported already
			}
			if !wire.ValidJobID(proc.ID) {
				v.add(p+".name", "process id %q is longer than 64 characters; use a shorter host name", proc.ID)
				continue
			}
			if prev, dup := ids[proc.ID]; dup {
				v.add(p, "process id %q is also a process of %s; rename a host", proc.ID, prev)
				continue
			}
			ids[proc.ID] = p
		}
	}
	if len(f.NATSServers()) == 0 && count[KindNATS] > 0 {
		v.add("hosts", "every NATS server is a leaf (nats.leaf); give at least one host a full NATS server for the leaves to connect to")
	}
	for _, k := range []Kind{KindNATS, KindParamServer, KindWorker} {
		if count[k] == 0 {
			v.add("hosts", "no host runs %s; give at least one host the role %q", k, k)
		}
	}
	switch n := count[KindCoordinator]; {
	case n == 0:
		v.add("hosts", "no host runs coordinator; give one host the role \"coordinator\" (three for high availability)")
	case n == 2:
		v.add("hosts", "2 coordinators: three coordinators are required for high availability; one runs without it")
	case n%2 == 0:
		v.add("hosts", "%d coordinators: use an odd number; %d survive no more failures than %d", n, n, n-1)
	}
}

func (k Kind) valid() bool {
	for _, x := range Kinds {
		if k == x {
			return true
		}
	}
	return false
}

// kindList is "nats, coordinator, paramserver, worker, serve".
func kindList() string {
	s := make([]string, len(Kinds))
	for i, k := range Kinds {
		s[i] = string(k)
	}
	return strings.Join(s, ", ")
}
