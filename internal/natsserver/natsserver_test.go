package natsserver

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func TestEmbeddedServerWithObjectStore(t *testing.T) {
	c := DefaultConfig()
	c.Port = -1
	c.StoreDir = t.TempDir()
	s, err := Start(c)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { s.Shutdown(); s.WaitForShutdown() }()
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if got := nc.MaxPayload(); got != 1<<20 {
		t.Fatalf("max payload %d, want 1 MiB", got)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	os, err := js.CreateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: "test"})
	if err != nil {
		t.Fatal(err)
	}
	blob := bytes.Repeat([]byte("maas"), 1<<20) // 4 MiB: several chunks
	if _, err := os.PutBytes(ctx, "x", blob); err != nil {
		t.Fatal(err)
	}
	got, err := os.GetBytes(ctx, "x")
	if err != nil || !bytes.Equal(got, blob) {
		t.Fatalf("object round trip: %d bytes, err %v", len(got), err)
	}
}

func TestBadConfig(t *testing.T) {
	c := DefaultConfig()
	c.Port = 70000
	if _, err := Start(c); err == nil {
		t.Fatal("started on port 70000")
	}
	c = DefaultConfig()
	c.ClusterPort = 6222
	if err := c.Validate(); err == nil {
		t.Fatal("a cluster without names validated")
	}
}

// TestRoutedServers: two embedded servers joined by a route carry each
// other's messages (a cluster may run several NATS servers).
func TestRoutedServers(t *testing.T) {
	ports := make([]int, 2)
	for i := range ports {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ports[i] = ln.Addr().(*net.TCPAddr).Port
		ln.Close()
	}
	start := func(name string, clusterPort int, routes []string) *server.Server {
		c := DefaultConfig()
		c.Port, c.ServerName, c.ClusterName, c.ClusterPort, c.Routes = -1, name, "maas", clusterPort, routes
		s, err := Start(c)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
		return s
	}
	a := start("a", ports[0], nil)
	b := start("b", ports[1], []string{fmt.Sprintf("nats://127.0.0.1:%d", ports[0])})
	deadline := time.Now().Add(10 * time.Second)
	for a.NumRoutes() == 0 || b.NumRoutes() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the servers did not form a route")
		}
		time.Sleep(20 * time.Millisecond)
	}
	na, err := nats.Connect(a.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer na.Close()
	nb, err := nats.Connect(b.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nb.Close()
	sub, err := na.SubscribeSync("maas.test")
	if err != nil {
		t.Fatal(err)
	}
	na.Flush()
	for {
		nb.Publish("maas.test", []byte("hi"))
		if m, err := sub.NextMsg(200 * time.Millisecond); err == nil {
			if string(m.Data) != "hi" {
				t.Fatalf("got %q", m.Data)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("a message published on b never reached a subscriber on a")
		}
	}
}
