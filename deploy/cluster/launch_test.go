package cluster

import (
	"os"
	"path"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/maas-ml/maas/internal/wire"
)

func TestArgs(t *testing.T) {
	f := loadTestdata(t)
	// Its own host's server first, then the others turned by the
	// process's place in the file.
	n1, n2, n3 := "nats://10.0.0.11:4222", "nats://10.0.0.12:4222", "nats://node3.lab.example.com:4222"
	nats := n1 + "," + n2 + "," + n3
	want := map[string]string{
		"node1-nats": "nats --host 0.0.0.0 --port 4222 --store-dir /var/lib/maas/node1-nats/data --name node1-nats " +
			"--cluster-name test-lab --cluster-port 6222 --routes nats://10.0.0.12:6222,nats://node3.lab.example.com:6222",
		"node1-coordinator": "coordinator --id node1-coordinator --raft 10.0.0.11:7000 --api 10.0.0.11:7070 " +
			"--data-dir /var/lib/maas/node1-coordinator/data --nats " + nats + " --data-roots /srv/datasets,/data/shared --serve-url http://10.0.0.11:8080",
		"node3-coordinator": "coordinator --id node3-coordinator --raft node3.lab.example.com:7000 --api node3.lab.example.com:7070 " +
			"--data-dir /data/maas/node3-coordinator/data --nats " + n3 + "," + n1 + "," + n2 + " --bootstrap=false --join 10.0.0.11:7070 --data-roots /srv/datasets,/data/shared --serve-url http://10.0.0.11:8080",
		"node2-paramserver-2": "paramserver --id node2-paramserver-2 --host node2 --nats " + n2 + "," + n3 + "," + n1,
		"node1-worker-1":      "worker --id node1-worker-1 --host node1 --nats " + nats + " --threads 14 --metrics-addr 10.0.0.11:9200",
		"node2-worker-1":      "worker --id node2-worker-1 --host node2 --nats " + n2 + "," + n1 + "," + n3,
		"node1-serve":         "serve --addr 0.0.0.0:8080 --server http://10.0.0.11:7070 --nats " + nats,
	}
	seen := 0
	for _, p := range f.Processes() {
		w, ok := want[p.ID]
		if !ok {
			continue
		}
		seen++
		if got := strings.Join(f.Args(p, false), " "); got != w {
			t.Errorf("Args(%s):\n got %s\nwant %s", p.ID, got, w)
		}
	}
	if seen != len(want) {
		t.Errorf("checked %d processes, want %d", seen, len(want))
	}
}

// TestArgsLeaf: a worker host's leaf server connects to the full members'
// leaf ports as its own NATS user, stores nothing, and is the first server
// of its host's workers; the full member listens for it; a process of a
// host without a server gets the full members alone.
func TestArgsLeaf(t *testing.T) {
	f, err := Parse([]byte(`name: lab
ssh: {agent: true}
hosts:
  - {name: s, address: 10.0.0.1, roles: [nats, coordinator, paramserver]}
  - {name: w1, address: 10.0.0.2, roles: [nats, worker], nats: {leaf: true, port: 4333}}
  - {name: w2, address: 10.0.0.3, roles: [worker]}
`))
	if err != nil {
		t.Fatal(err)
	}
	sec := "/var/lib/maas/secrets/"
	want := map[string]string{
		"s-nats": "nats --host 0.0.0.0 --port 4222 --store-dir /var/lib/maas/s-nats/data --name s-nats --leaf-port 7422 " +
			"--tls-cert " + sec + "host-s.crt --tls-key " + sec + "host-s.key --route-ca " + sec + "ca.crt --auth " + sec + "nats-users.conf",
		"w1-nats": "nats --host 0.0.0.0 --port 4333 --store-dir  --name w1-nats --leaf-remotes nats://10.0.0.1:7422 " +
			"--tls-cert " + sec + "host-w1.crt --tls-key " + sec + "host-w1.key --route-ca " + sec + "ca.crt --auth " + sec + "nats-users.conf " +
			"--leaf-seed " + sec + "w1-nats.nk",
		"w1-worker-1":     "worker --id w1-worker-1 --host w1 --nats nats://10.0.0.2:4333,nats://10.0.0.1:4222",
		"w2-worker-1":     "worker --id w2-worker-1 --host w2 --nats nats://10.0.0.1:4222",
		"s-paramserver-1": "paramserver --id s-paramserver-1 --host s --nats nats://10.0.0.1:4222",
	}
	for _, p := range f.Processes() {
		w, ok := want[p.ID]
		if !ok {
			continue
		}
		got := strings.Join(f.Args(p, p.Kind == KindNATS), " ")
		if got != w {
			t.Errorf("Args(%s):\n got %s\nwant %s", p.ID, got, w)
		}
		delete(want, p.ID)
	}
	if len(want) > 0 {
		t.Errorf("no processes %v", want)
	}
	w1 := f.host("w1")
	if got := f.hostSecrets(w1); !slices.Contains(got, SeedFile("w1-nats")) || !slices.Contains(got, NATSUsersFile) {
		t.Errorf("w1's secrets %v lack its leaf's seed or the NATS users", got)
	}
	perms := f.LeafPermissions(w1)
	wp, _ := ProcessPermissions(KindWorker, "w1-worker-1")
	for _, s := range append(wp.Publish, inboxes) {
		if !slices.Contains(perms.Publish, s) {
			t.Errorf("w1's leaf may not publish %s, which its worker may", s)
		}
	}
	if slices.Contains(perms.Publish, wire.ParamSubject("*")) || slices.Contains(perms.Publish, wire.AssignSubject("*")) {
		t.Errorf("w1's leaf may publish parameters or assignments: %v", perms.Publish)
	}

	if _, err := Parse([]byte(`name: lab
ssh: {agent: true}
hosts:
  - {name: s, address: 10.0.0.1, roles: [nats, coordinator, paramserver, worker], nats: {leaf: true}}
`)); err == nil || !strings.Contains(err.Error(), "every NATS server is a leaf") {
		t.Errorf("a cluster of leaves alone: %v", err)
	}
}

// TestLeafRemotesSpread: with two full members (two server hosts) the
// leaves take them in turn, each trying its own first, then the other.
func TestLeafRemotesSpread(t *testing.T) {
	f, err := Parse([]byte(`name: lab
ssh: {agent: true}
hosts:
  - {name: s1, address: 10.0.0.1, roles: [nats, coordinator, paramserver]}
  - {name: s2, address: 10.0.0.2, roles: [nats, paramserver]}
  - {name: w1, address: 10.0.0.3, roles: [nats, worker], nats: {leaf: true}}
  - {name: w2, address: 10.0.0.4, roles: [nats, worker], nats: {leaf: true}}
  - {name: w3, address: 10.0.0.5, roles: [nats, worker], nats: {leaf: true}}
`))
	if err != nil {
		t.Fatal(err)
	}
	h1, h2 := "nats://10.0.0.1:7422", "nats://10.0.0.2:7422"
	want := map[string][]string{"w1-nats": {h1, h2}, "w2-nats": {h2, h1}, "w3-nats": {h1, h2}}
	for _, p := range f.ProcessesOf(KindNATS) {
		if w, ok := want[p.ID]; ok {
			if got := f.NATSLeafRemotesFor(p); !slices.Equal(got, w) {
				t.Errorf("%s's leaf remotes %v, want %v", p.ID, got, w)
			}
			delete(want, p.ID)
		}
	}
	if len(want) > 0 {
		t.Errorf("no leaves %v", want)
	}
	// The leaves start once the full members listen.
	if st := f.Stages(); len(st) < 2 || st[0].Name != "nats" || len(st[0].Processes) != 2 || st[1].Name != "leaf nats" || len(st[1].Processes) != 3 {
		t.Errorf("stages %+v: want the two full members, then the three leaves", st[:min(2, len(st))])
	}
	for _, p := range f.ProcessesOf(KindParamServer) {
		if a := strings.Join(f.Args(p, false), " "); !strings.Contains(a, "--host "+p.Host+" ") {
			t.Errorf("%s is not told its host: %s", p.ID, a)
		}
	}
}

// TestArgsSecured: a secured process gets its own credentials from its
// host's secrets directory, and nothing of another process's.
func TestArgsSecured(t *testing.T) {
	f := loadTestdata(t)
	sec := "/var/lib/maas/secrets/"
	want := map[string]string{
		"node1-nats": "--tls-cert " + sec + "host-node1.crt --tls-key " + sec + "host-node1.key --route-ca " + sec + "ca.crt --auth " + sec + "nats-users.conf",
		"node1-coordinator": "--nats-seed " + sec + "node1-coordinator.nk --nats-ca " + sec + "ca.crt --tls-cert " + sec + "host-node1.crt --tls-key " + sec + "host-node1.key " +
			"--tokens " + sec + "tokens.json --raft-ca " + sec + "ca.crt --join-ca " + sec + "ca.crt --join-token-file " + sec + "admin.token",
		"node1-worker-1": "--nats-seed " + sec + "node1-worker-1.nk --nats-ca " + sec + "ca.crt",
		"node1-serve": "--nats-seed " + sec + "node1-serve.nk --nats-ca " + sec + "ca.crt --tls-cert " + sec + "host-node1.crt --tls-key " + sec + "host-node1.key " +
			"--tokens " + sec + "tokens.json --server-ca " + sec + "ca.crt --server-token-file " + sec + "read.token",
	}
	seen := 0
	for _, p := range f.Processes() {
		plain, secured := strings.Join(f.Args(p, false), " "), strings.Join(f.Args(p, true), " ")
		switch p.Kind {
		case KindServe:
			plain = strings.Replace(plain, "--server http://", "--server https://", 1)
		case KindCoordinator:
			plain = strings.Replace(plain, "--serve-url http://", "--serve-url https://", 1)
		}
		extra, ok := strings.CutPrefix(secured, plain+" ")
		if !ok {
			t.Errorf("Args(%s, true) = %s, want the plain arguments and then the credentials", p.ID, secured)
			continue
		}
		if w, ok := want[p.ID]; ok {
			seen++
			if extra != w {
				t.Errorf("credentials of %s:\n got %s\nwant %s", p.ID, extra, w)
			}
		}
		for _, name := range strings.Fields(extra) {
			if strings.HasSuffix(name, ".nk") && path.Base(name) != SeedFile(p.ID) {
				t.Errorf("%s is given another process's seed %s", p.ID, name)
			}
		}
	}
	if seen != len(want) {
		t.Errorf("checked %d processes, want %d", seen, len(want))
	}
}

func TestArgsSingleNATS(t *testing.T) {
	f, err := Parse([]byte(`
name: one
ssh: {key: ~/.ssh/id_ed25519}
hosts:
  - {name: a, address: 10.1.0.1, roles: [nats, coordinator, paramserver, worker]}
  - {name: b, address: 10.1.0.2, roles: [serve]}
`))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range f.Processes() {
		got := strings.Join(f.Args(p, false), " ")
		switch p.Kind {
		case KindNATS:
			if strings.Contains(got, "--routes") || strings.Contains(got, "--cluster-port") {
				t.Errorf("a single NATS server has no routes: %s", got)
			}
		case KindServe:
			// b has no coordinator: serve asks a's.
			if !strings.Contains(got, "--server http://10.1.0.1:7070") {
				t.Errorf("serve on b: %s", got)
			}
		}
	}
}

func TestRunScriptAndUnit(t *testing.T) {
	f := loadTestdata(t)
	var p Process
	for _, q := range f.Processes() {
		if q.ID == "node3-worker-2" {
			p = q
		}
	}
	script := f.RunScript(p, false)
	for _, want := range []string{
		"#!/bin/sh\n",
		"cd '/data/maas/node3-worker-2' || exit 1\n",
		"echo $$ >pid\n",
		"MAAS_PROCESS='node3-worker-2'; export MAAS_PROCESS\n",
		"exec '/data/maas/bin/maas' 'worker' '--id' 'node3-worker-2' '--host' 'node3' '--nats' ",
		" '--threads' '8' '--metrics-addr' 'node3.lab.example.com:9201'\n", // the second worker: metrics_port + 1
	} {
		if !strings.Contains(script, want) {
			t.Errorf("run script lacks %q:\n%s", want, script)
		}
	}
	unit := f.Unit(p)
	for _, want := range []string{
		"Description=maas worker node3-worker-2 (cluster test-lab)\n",
		"ExecStart=/data/maas/node3-worker-2/run\n",
		"WorkingDirectory=/data/maas/node3-worker-2\n",
		"TimeoutStopSec=10\n",
		"StandardOutput=append:/data/maas/node3-worker-2/log\n",
		"[Install]\nWantedBy=multi-user.target\n",
	} {
		if !strings.Contains(unit, want) {
			t.Errorf("unit lacks %q:\n%s", want, unit)
		}
	}
	if got := UnitPath(p.ID); got != "/etc/systemd/system/maas-node3-worker-2.service" {
		t.Errorf("UnitPath = %s", got)
	}
}

func TestStages(t *testing.T) {
	f := loadTestdata(t)
	var got []string
	for _, s := range f.Stages() {
		var ids []string
		for _, p := range s.Processes {
			ids = append(ids, p.ID)
		}
		got = append(got, s.Name+": "+strings.Join(ids, " "))
	}
	want := []string{
		"nats: node1-nats node2-nats node3-nats",
		"first coordinator: node1-coordinator",
		"other coordinators: node2-coordinator node3-coordinator",
		"parameter servers: node1-paramserver-1 node2-paramserver-1 node2-paramserver-2",
		"workers: node1-worker-1 node2-worker-1 node3-worker-1 node3-worker-2",
		"serve: node1-serve",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("Stages():\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestHostSecrets(t *testing.T) {
	f := loadTestdata(t)
	got := strings.Join(f.hostSecrets(&f.Hosts[2]), " ")
	want := "ca.crt host-node3.crt host-node3.key node3-coordinator.nk node3-worker-1.nk node3-worker-2.nk nats-users.conf tokens.json admin.token"
	if got != want {
		t.Errorf("hostSecrets(node3) = %s, want %s", got, want)
	}
	// node1 runs serve: the token hashes and the read token.
	got = strings.Join(f.hostSecrets(&f.Hosts[0]), " ")
	if !strings.HasSuffix(got, " tokens.json admin.token read.token") {
		t.Errorf("hostSecrets(node1) = %s, want the token hashes, the admin token and serve's read token last", got)
	}
	if strings.Contains(got, "ca.key") || strings.Contains(got, OperatorSeedFile) {
		t.Error("the CA's key and the operator's seed must never leave the admin machine")
	}
}

func TestScriptsQuote(t *testing.T) {
	l := Layout{DataDir: "/srv/it's"}
	for name, s := range map[string]string{
		"status": statusScript(l, []string{"a-nats"}),
		"start":  startScript(l, []string{"a-nats"}, false),
		"stop":   stopScript(l, []string{"a-nats"}, 10),
		"purge":  purgeScript(l, []string{"a-nats"}),
	} {
		if !strings.Contains(s, `'/srv/it'\''s`) {
			t.Errorf("%s script does not quote the data dir:\n%s", name, s)
		}
	}
	if s := stopScript(l, []string{"x"}, 10); !strings.Contains(s, "-lt 100 ]") {
		t.Errorf("stop script does not wait 10 s:\n%s", s)
	}
	if s := startScript(l, []string{"x"}, true); !strings.Contains(s, "systemctl enable --now 'maas-x.service'") {
		t.Errorf("systemd start script:\n%s", s)
	}
}

func TestParseStatus(t *testing.T) {
	got := parseStatus("a-nats 123 running\na-worker-1 - stopped\n\ngarbage\n")
	if got["a-nats"] != 123 || got["a-worker-1"] != 0 || len(got) != 2 {
		t.Errorf("parseStatus = %v", got)
	}
}

func TestPlatform(t *testing.T) {
	for out, want := range map[string]string{
		"Linux x86_64\n": "linux/amd64",
		"Linux aarch64":  "linux/arm64",
		"Darwin arm64":   "darwin/arm64",
	} {
		p, err := unamePlatform(out)
		if err != nil || p.String() != want {
			t.Errorf("unamePlatform(%q) = %v, %v; want %s", out, p, err, want)
		}
	}
	if _, err := unamePlatform("Linux sparc64"); err == nil {
		t.Error("unknown machine accepted")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	p, err := filePlatform(self)
	if err != nil {
		t.Fatal(err)
	}
	if want := (Platform{runtime.GOOS, runtime.GOARCH}); p != want {
		t.Errorf("filePlatform(test binary) = %v, want %v", p, want)
	}
}

func TestExpandHome(t *testing.T) {
	t.Setenv("HOME", "/home/me")
	for in, want := range map[string]string{"~/.ssh/k": "/home/me/.ssh/k", "~": "/home/me", "/etc/k": "/etc/k", "~other/k": "~other/k"} {
		if got, err := expandHome(in); err != nil || got != want {
			t.Errorf("expandHome(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}
