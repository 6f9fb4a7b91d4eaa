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

	"github.com/maas-ml/maas/internal/wire"
)

// freePort is a TCP port nothing listens on (for a moment).
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func startT(t testing.TB, c Config) *server.Server {
	t.Helper()
	s, err := Start(c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return s
}

// waitLeaves waits until s has n leaf connections.
func waitLeaves(t testing.TB, s *server.Server, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for s.NumLeafNodes() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d leaf connections, want %d", s.NumLeafNodes(), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// leafOutMsgs is the number of messages the hub sent over its leaf
// connections.
func leafOutMsgs(t testing.TB, hub *server.Server) int64 {
	t.Helper()
	lz, err := hub.Leafz(nil)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, l := range lz.Leafs {
		n += l.OutMsgs
	}
	return n
}

// TestLeafNode: a server with no JetStream of its own, a leaf node of a
// hub, gives its clients the hub's Object Store and the hub's subscribers;
// a message for three subscribers on the leaf crosses the leaf connection
// once.
func TestLeafNode(t *testing.T) {
	lp := freePort(t)
	hc := DefaultConfig()
	hc.Port, hc.StoreDir, hc.ServerName, hc.LeafPort = -1, t.TempDir(), "hub", lp
	hub := startT(t, hc)
	lc := DefaultConfig()
	lc.Port, lc.ServerName, lc.LeafRemotes = -1, "leaf", []string{fmt.Sprintf("nats://127.0.0.1:%d", lp)}
	leaf := startT(t, lc)
	waitLeaves(t, hub, 1)

	conn := func(s *server.Server) *nats.Conn {
		nc, err := nats.Connect(s.ClientURL())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		return nc
	}
	// The Object Store of the hub, from the leaf.
	js, err := wire.JetStream(conn(leaf))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var store jetstream.ObjectStore
	for { // the hub's JetStream interest reaches the leaf asynchronously
		if store, err = js.CreateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: "test"}); err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("the hub's Object Store from the leaf: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	blob := bytes.Repeat([]byte("maas"), 1<<19)
	if _, err := store.PutBytes(ctx, "x", blob); err != nil {
		t.Fatal(err)
	}
	if got, err := store.GetBytes(ctx, "x"); err != nil || !bytes.Equal(got, blob) {
		t.Fatalf("object round trip through the leaf: %d bytes, err %v", len(got), err)
	}

	// Requests both ways.
	hubc := conn(hub)
	if _, err := hubc.Subscribe("svc.hub", func(m *nats.Msg) { m.Respond([]byte("from hub")) }); err != nil {
		t.Fatal(err)
	}
	hubc.Flush()
	leafc := conn(leaf)
	var reply *nats.Msg
	for try := 0; ; try++ { // the hub's interest reaches the leaf asynchronously
		if reply, err = leafc.Request("svc.hub", nil, time.Second); err == nil || try == 20 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil || string(reply.Data) != "from hub" {
		t.Fatalf("a request from the leaf to the hub: %v", err)
	}

	// One crossing for three subscribers on the leaf.
	got := make(chan []byte, 3)
	for range 3 {
		nc := conn(leaf)
		if _, err := nc.Subscribe("maas.param.j", func(m *nats.Msg) { got <- m.Data }); err != nil {
			t.Fatal(err)
		}
		nc.Flush()
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		hubc.Publish("maas.param.j", []byte("probe")) // until the leaf's interest has reached the hub
		select {
		case <-got:
		case <-time.After(100 * time.Millisecond):
		}
		if len(got) == 0 && leafOutMsgs(t, hub) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the leaf's subscribers never received a message from the hub")
		}
	}
	time.Sleep(200 * time.Millisecond)
	for len(got) > 0 {
		<-got
	}
	before := leafOutMsgs(t, hub)
	payload := bytes.Repeat([]byte{7}, 100_000)
	if err := hubc.Publish("maas.param.j", payload); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; {
		select {
		case d := <-got:
			if string(d) == "probe" { // late, on a loaded machine
				continue
			}
			if !bytes.Equal(d, payload) {
				t.Fatalf("subscriber %d got %d bytes", i, len(d))
			}
			i++
		case <-time.After(5 * time.Second):
			t.Fatalf("%d of 3 subscribers on the leaf got the message", i)
		}
	}
	if n := leafOutMsgs(t, hub) - before; n != 1 {
		t.Errorf("the message crossed the leaf connection %d times for 3 subscribers, want once", n)
	}
}

func TestLeafConfigErrors(t *testing.T) {
	c := DefaultConfig()
	c.LeafRemotes, c.StoreDir = []string{"nats://127.0.0.1:7422"}, t.TempDir()
	if err := c.Validate(); err == nil {
		t.Error("a leaf with its own JetStream validated")
	}
	c = DefaultConfig()
	c.LeafRemotes = []string{"not a url"}
	if err := c.Validate(); err == nil {
		t.Error("a leaf remote that is no URL validated")
	}
	c = DefaultConfig()
	c.LeafPort, c.TLSCert, c.TLSKey = 7422, "h.crt", "h.key"
	if err := c.Validate(); err == nil {
		t.Error("leaf connections over TLS without the CA validated")
	}
	c = DefaultConfig()
	c.Port, c.LeafRemotes, c.LeafSeed = -1, []string{"nats://127.0.0.1:7422"}, "/nonexistent/leaf.nk"
	if _, err := Start(c); err == nil {
		t.Error("a leaf with a missing seed file started")
	}
}
