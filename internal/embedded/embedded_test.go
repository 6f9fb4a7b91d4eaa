package embedded

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/maas-ml/maas/internal/api"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestStartClose: the embedded cluster comes up with its members
// registered with the coordinator, Close releases everything, and a second
// start on the same data directory (Raft and JetStream state on disk) and
// ports comes up again.
func TestStartClose(t *testing.T) {
	cfg := Config{DataDir: t.TempDir(), NATSPort: -1, APIAddr: "127.0.0.1:0", RaftAddr: freeAddr(t), Workers: 2, Servers: 2, Threads: 1}
	for round := range 2 {
		c, err := Start(t.Context(), cfg)
		if err != nil {
			t.Fatalf("start %d: %v", round+1, err)
		}
		client, err := api.NewClient(c.APIURL)
		if err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		var cs api.ClusterStatus
		for time.Now().Before(deadline) {
			if cs, err = client.Cluster(t.Context()); err == nil && len(cs.Workers) == 2 && len(cs.Servers) == 2 {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if len(cs.Workers) != 2 || len(cs.Servers) != 2 || cs.Leader == "" {
			t.Fatalf("start %d: cluster status %+v (%v), want a leader, 2 workers and 2 parameter servers", round+1, cs, err)
		}
		if len(c.WorkerConns()) != 2 {
			t.Errorf("%d worker connections", len(c.WorkerConns()))
		}
		c.Close()
		if _, err := client.Cluster(t.Context()); err == nil {
			t.Fatalf("start %d: the API still answers after Close", round+1)
		}
	}
}

// TestValidate: a config that cannot start names what is wrong.
func TestValidate(t *testing.T) {
	for _, c := range []struct {
		edit func(*Config)
		want string
	}{
		{func(c *Config) { c.Workers = -1 }, "workers"},
		{func(c *Config) { c.Coordinators = -1 }, "coordinators"},
		{func(c *Config) { c.Servers = -1 }, "parameter servers"},
		{func(c *Config) { c.Threads = 0 }, "threads"},
		{func(c *Config) { c.DataDir = "" }, "data directory"},
	} {
		cfg := DefaultConfig()
		c.edit(&cfg)
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Validate: %v, want an error naming %s", err, c.want)
		}
		if _, err := Start(t.Context(), cfg); err == nil {
			t.Errorf("Start took a config without %s", c.want)
		}
	}
	if err := DefaultConfig().Validate(); err != nil {
		t.Errorf("DefaultConfig: %v", err)
	}
}
