package natsserver

import (
	"bytes"
	"context"
	"testing"
	"time"

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
