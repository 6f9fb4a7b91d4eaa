package cluster

import (
	"fmt"
	"strings"
	"testing"
)

func loadTestdata(t *testing.T) *File {
	t.Helper()
	f, err := Load("testdata/cluster.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestProcesses(t *testing.T) {
	f := loadTestdata(t)
	var got []string
	for _, p := range f.Processes() {
		var ports []string
		for _, pt := range p.Ports {
			ports = append(ports, fmt.Sprintf("%s=%d", pt.Name, pt.Number))
		}
		line := fmt.Sprintf("%s %s/%s#%d [%s]", p.ID, p.Host, p.Kind, p.Index, strings.Join(ports, " "))
		if p.Threads != 0 {
			line += fmt.Sprintf(" threads=%d", p.Threads)
		}
		got = append(got, line)
	}
	want := []string{
		"node1-nats node1/nats#1 [client=4222 route=6222]",
		"node1-coordinator node1/coordinator#1 [http=7070 raft=7000]",
		"node1-paramserver-1 node1/paramserver#1 [metrics=9100]",
		"node1-worker-1 node1/worker#1 [metrics=9200] threads=14",
		"node1-serve node1/serve#1 [http=8080]",
		"node2-nats node2/nats#1 [client=4222 route=6222]",
		"node2-coordinator node2/coordinator#1 [http=7070 raft=7000]",
		"node2-paramserver-1 node2/paramserver#1 []",
		"node2-paramserver-2 node2/paramserver#2 []",
		"node2-worker-1 node2/worker#1 []",
		"node3-nats node3/nats#1 [client=4222 route=6222]",
		"node3-coordinator node3/coordinator#1 [http=7070 raft=7000]",
		"node3-worker-1 node3/worker#1 [metrics=9200] threads=8",
		"node3-worker-2 node3/worker#2 [metrics=9201] threads=8",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("Processes():\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestAddresses(t *testing.T) {
	f := loadTestdata(t)
	for _, c := range []struct {
		name      string
		got, want string
	}{
		{"NATSServers", fmt.Sprint(f.NATSServers()), "[nats://10.0.0.11:4222 nats://10.0.0.12:4222 nats://node3.lab.example.com:4222]"},
		{"NATSRoutes", fmt.Sprint(f.NATSRoutes()), "[nats://10.0.0.11:6222 nats://10.0.0.12:6222 nats://node3.lab.example.com:6222]"},
		{"RaftPeers", fmt.Sprint(f.RaftPeers()),
			"[{node1-coordinator 10.0.0.11:7000 10.0.0.11:7070} {node2-coordinator 10.0.0.12:7000 10.0.0.12:7070} " +
				"{node3-coordinator node3.lab.example.com:7000 node3.lab.example.com:7070}]"},
	} {
		if c.got != c.want {
			t.Errorf("%s = %s, want %s", c.name, c.got, c.want)
		}
	}
}

func TestAddrIPv6(t *testing.T) {
	p := Process{Address: "fd00::1", Ports: []Port{{PortClient, 4222}}}
	if got := p.Addr(PortClient); got != "[fd00::1]:4222" {
		t.Errorf("Addr = %s", got)
	}
}

func ExampleFile_Processes() {
	f, err := Parse([]byte(`
name: lab
ssh: {agent: true}
hosts:
  - name: node1
    address: 10.0.0.11
    roles: [nats, coordinator, paramserver, worker]
    worker: {count: 2}
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, p := range f.Processes() {
		fmt.Println(p.ID, p.Ports)
	}
	// Output:
	// node1-nats [{client 4222} {route 6222}]
	// node1-coordinator [{http 7070} {raft 7000}]
	// node1-paramserver-1 []
	// node1-worker-1 []
	// node1-worker-2 []
}
