package cluster

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadTestdata(t *testing.T) {
	f, err := Load("testdata/cluster.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if f.Name != "test-lab" || f.SecretsDir != "/tmp/test-lab-secrets" || len(f.DataRoots) != 2 || len(f.Hosts) != 3 {
		t.Fatalf("parsed %+v", f)
	}
	if !f.SSH.Agent || f.SSH.User != "maas" || f.SSH.KnownHosts != "/etc/ssh/ssh_known_hosts" {
		t.Errorf("ssh = %+v", f.SSH)
	}
	n1, n2, n3 := &f.Hosts[0], &f.Hosts[1], &f.Hosts[2]
	if n1.Worker.Threads != 14 || n1.Worker.MetricsPort != 9200 || n1.ParamServer.MetricsPort != 9100 {
		t.Errorf("node1 options: worker %+v paramserver %+v", *n1.Worker, *n1.ParamServer)
	}
	// Defaults filled in.
	if n2.DataDir != DefaultDataDir || n2.NATS.Port != 4222 || n2.NATS.ClusterPort != 6222 ||
		n2.Coordinator.HTTPPort != 7070 || n2.Coordinator.RaftPort != 7000 || n2.Worker.Count != 1 || n2.ParamServer.Count != 2 {
		t.Errorf("node2 defaults: data_dir %q nats %+v coordinator %+v worker %+v", n2.DataDir, *n2.NATS, *n2.Coordinator, *n2.Worker)
	}
	if n3.DataDir != "/data/maas" || n3.Serve != nil || n3.ParamServer != nil {
		t.Errorf("node3: %+v", *n3)
	}
	for _, c := range []struct {
		host       *Host
		user, key  string
		port       int
		agent      bool
		knownHosts string
	}{
		{n1, "maas", "", 22, true, "/etc/ssh/ssh_known_hosts"},
		{n2, "maas", "/home/maas/.ssh/node2_ed25519", 22, true, "/etc/ssh/ssh_known_hosts"},
		{n3, "admin", "", 2222, true, "/etc/ssh/ssh_known_hosts"},
	} {
		s := f.SSHFor(c.host)
		if s.User != c.user || s.Key != c.key || s.Port != c.port || s.Agent != c.agent || s.KnownHosts != c.knownHosts {
			t.Errorf("SSHFor(%s) = %+v", c.host.Name, s)
		}
	}
}

func TestLoadExample(t *testing.T) {
	f, err := Load("../../examples/cluster/cluster.yaml")
	if err != nil {
		t.Fatal(err)
	}
	count := map[Kind]int{}
	for _, p := range f.Processes() {
		count[p.Kind]++
	}
	want := map[Kind]int{KindNATS: 3, KindCoordinator: 3, KindParamServer: 2, KindWorker: 4, KindServe: 1}
	if fmt.Sprint(count) != fmt.Sprint(want) {
		t.Errorf("processes by role = %v, want %v", count, want)
	}
}

// validHosts is a valid hosts block: one host with every role.
const validHosts = `
hosts:
  - name: a
    address: 10.0.0.1
    roles: [nats, coordinator, paramserver, worker, serve]
`

func TestParseErrors(t *testing.T) {
	head := "name: lab\nssh: {key: /k}\n"
	host := func(name, addr, rest string) string {
		return fmt.Sprintf("  - name: %s\n    address: %s\n%s", name, addr, rest)
	}
	all := "    roles: [nats, coordinator, paramserver, worker]\n"
	for _, c := range []struct {
		name string
		yaml string
		want []string // each must be in the error
	}{
		{"empty file", "", []string{"the file is empty"}},
		{"unknown top-level field", head + "nmae: x\n" + validHosts, []string{`line 3: unknown field "nmae" in the cluster file`}},
		{"unknown host field", head + "hosts:\n" + host("a", "10.0.0.1", "    adress: x\n"+all), []string{`line 6: unknown field "adress" in a host`}},
		{"unknown role option", head + "hosts:\n" + host("a", "10.0.0.1", all+"    worker: {thread: 2}\n"), []string{`line 7: unknown field "thread" in worker`}},
		{"unknown host ssh field", head + "hosts:\n" + host("a", "10.0.0.1", "    ssh: {agent: true}\n"+all), []string{`line 6: unknown field "agent" in a host's ssh`}},
		{"no name", "ssh: {key: /k}\n" + validHosts, []string{"name: missing"}},
		{"bad cluster name", "name: my lab\nssh: {key: /k}\n" + validHosts, []string{`name: "my lab": use letters, digits`}},
		{"no hosts", head, []string{"hosts: no hosts; list at least one"}},
		{"unknown role", head + "hosts:\n" + host("a", "10.0.0.1", all) + host("b", "10.0.0.2", "    roles: [worker]\n") +
			host("c", "10.0.0.3", "    roles: [worker, wrker]\n"),
			[]string{`hosts[2].roles[1]: unknown role "wrker" (want nats, coordinator, paramserver, worker, serve)`}},
		{"duplicate role", head + "hosts:\n" + host("a", "10.0.0.1", "    roles: [nats, coordinator, paramserver, worker, worker]\n"),
			[]string{`hosts[0].roles[4]: role "worker" is listed twice (also roles[3]); set worker.count`}},
		{"no roles", head + "hosts:\n" + host("a", "10.0.0.1", all) + host("b", "10.0.0.2", ""),
			[]string{"hosts[1].roles: no roles"}},
		{"duplicate host name", head + "hosts:\n" + host("a", "10.0.0.1", all) + host("a", "10.0.0.2", "    roles: [worker]\n"),
			[]string{`hosts[1].name: "a" is also hosts[0].name`}},
		{"duplicate address", head + "hosts:\n" + host("a", "Node.example.com", all) + host("b", "node.example.com", "    roles: [worker]\n"),
			[]string{`hosts[1].address: "node.example.com" is also hosts[0].address`}},
		{"bad host name", head + "hosts:\n" + host("a.b", "10.0.0.1", all), []string{`hosts[0].name: "a.b": use letters, digits`}},
		{"bad address", head + "hosts:\n" + host("a", "not_a host", all), []string{`hosts[0].address: "not_a host" is neither an IP address nor a DNS name`}},
		{"numeric address", head + "hosts:\n" + host("a", "10.0.0.300", all), []string{`hosts[0].address: "10.0.0.300" is neither`}},
		{"wrong type", head + "hosts:\n" + host("a", "10.0.0.1", all+"    worker: {count: two}\n"), []string{"line 7: cannot unmarshal !!str `two` into int"}},
		{"no address", head + "hosts:\n  - name: a\n" + all, []string{"hosts[0].address: missing"}},
		{"two coordinators", head + "hosts:\n" + host("a", "10.0.0.1", all) + host("b", "10.0.0.2", "    roles: [coordinator]\n"),
			[]string{"hosts: 2 coordinators: three coordinators are required for high availability; one runs without it"}},
		{"four coordinators", head + "hosts:\n" + host("a", "10.0.0.1", all) + host("b", "10.0.0.2", "    roles: [coordinator]\n") +
			host("c", "10.0.0.3", "    roles: [coordinator]\n") + host("d", "10.0.0.4", "    roles: [coordinator]\n"),
			[]string{"hosts: 4 coordinators: use an odd number"}},
		{"no coordinator", head + "hosts:\n" + host("a", "10.0.0.1", "    roles: [nats, paramserver, worker]\n"),
			[]string{"hosts: no host runs coordinator"}},
		{"no nats, paramserver or worker", head + "hosts:\n" + host("a", "10.0.0.1", "    roles: [coordinator]\n"),
			[]string{"hosts: no host runs nats", "hosts: no host runs paramserver", "hosts: no host runs worker"}},
		{"port clash between roles", head + "hosts:\n" + host("a", "10.0.0.1", "    roles: [nats, coordinator, paramserver, worker, serve]\n    coordinator: {http_port: 8080}\n"),
			[]string{"hosts[0]: port 8080 is used by both a-coordinator http (coordinator.http_port) and a-serve http (serve.http_port)"}},
		{"port clash between processes", head + "hosts:\n" + host("a", "10.0.0.1", all+"    paramserver: {metrics_port: 9101}\n    worker: {count: 2, metrics_port: 9100}\n"),
			[]string{"hosts[0]: port 9101 is used by both a-paramserver-1 metrics (paramserver.metrics_port) and a-worker-2 metrics (worker.metrics_port+1)"}},
		{"port clash with sshd", head + "hosts:\n" + host("a", "10.0.0.1", all+"    nats: {port: 22}\n"),
			[]string{"hosts[0]: port 22 is used by both sshd (ssh.port) and a-nats client (nats.port)"}},
		{"port out of range", head + "hosts:\n" + host("a", "10.0.0.1", all+"    nats: {port: 70000, cluster_port: -1}\n"),
			[]string{"hosts[0].nats.port: 70000 is not a port (1 to 65535)", "hosts[0].nats.cluster_port: -1 is not a port"}},
		{"metrics ports past 65535", head + "hosts:\n" + host("a", "10.0.0.1", all+"    worker: {count: 3, metrics_port: 65534}\n"),
			[]string{"hosts[0].worker.metrics_port: 65534 is not a port, or its 3 processes would need ports up to 65536"}},
		{"ssh port out of range", "name: lab\nssh: {key: /k, port: 99999}\n" + validHosts, []string{"ssh.port: 99999 is not a port"}},
		{"no ssh key", "name: lab\n" + validHosts, []string{"ssh: no key file and agent is false", "hosts without a key of their own: a"}},
		{"relative data root", head + "data_roots: [data, /srv/../etc]\n" + validHosts,
			[]string{`data_roots[0]: "data" is not an absolute path`, `data_roots[1]: "/srv/../etc" is not a clean path; write /etc`}},
		{"relative data dir", head + "hosts:\n" + host("a", "10.0.0.1", all+"    data_dir: maas\n"), []string{`hosts[0].data_dir: "maas" is not an absolute path`}},
		{"options without the role", head + "hosts:\n" + host("a", "10.0.0.1", all+"    serve: {http_port: 9000}\n"),
			[]string{"hosts[0].serve: options for serve, but serve is not in roles"}},
		{"negative count and threads", head + "hosts:\n" + host("a", "10.0.0.1", all+"    paramserver: {count: -1}\n    worker: {threads: -2}\n"),
			[]string{"hosts[0].paramserver.count: -1; give the number of processes", "hosts[0].worker.threads: -2; give the cores"}},
		{"process id too long", head + "hosts:\n" + host(strings.Repeat("h", 60), "10.0.0.1", all),
			[]string{`hosts[0].name: process id "` + strings.Repeat("h", 60) + `-coordinator" is longer than 64 characters`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(c.yaml))
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %q is not ErrInvalid", err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error\n%v\ndoes not say\n%s", err, w)
				}
			}
		})
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	f := &File{Name: "lab", SSH: SSH{Agent: true}, Hosts: []Host{
		{Name: "a", Address: "10.0.0.1", Roles: []Kind{KindNATS, "wrker"}},
		{Name: "b", Address: "10.0.0.1", Roles: []Kind{KindCoordinator, KindWorker}},
	}}
	err := f.Validate()
	var paths []string
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var fe *FieldError
		if !errors.As(e, &fe) {
			t.Fatalf("%v is not a *FieldError", e)
		}
		paths = append(paths, fe.Path)
	}
	want := "[hosts[0].roles[1] hosts[1].address hosts]"
	if fmt.Sprint(paths) != want {
		t.Errorf("problems at %v, want %s:\n%v", paths, want, err)
	}
}

func TestValidateWithoutDefaults(t *testing.T) {
	// A File built in Go, not parsed: zero ports and counts are defaults.
	f := &File{Name: "lab", SSH: SSH{Key: "/k"}, Hosts: []Host{
		{Name: "a", Address: "a.example.com", Roles: Kinds},
	}}
	if err := f.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestLoadNamesTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cluster.yaml")
	os.WriteFile(path, []byte("name: lab\nssh: {agent: true}\nhosts:\n  - name: a\n    address: 10.0.0.1\n    roles: [nats, wrker]\n"), 0o600)
	_, err := Load(path)
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("Load: %v", err)
	}
	want := path + ":\n  hosts[0].roles[1]: unknown role \"wrker\""
	if !strings.HasPrefix(err.Error(), want) {
		t.Errorf("Load:\n%v\nwant it to start\n%s", err, want)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.yaml")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load of a missing file: %v", err)
	}
}
