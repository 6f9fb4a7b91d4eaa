package embedded

import (
	"bufio"
	"net"
	"strings"
	"testing"
	"time"
)

// echoServer answers each line with the same line, until the test ends.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if _, err := c.Write([]byte(line)); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// TestRelayPartitionHoldsTraffic: through the relay a line comes back at
// once; partitioned, nothing comes back (neither on the open connection
// nor on a new one) until Heal, and then everything held arrives, in
// order; close ends the connections.
func TestRelayPartitionHoldsTraffic(t *testing.T) {
	r, err := newRelay(echoServer(t))
	if err != nil {
		t.Fatal(err)
	}
	addr := strings.TrimPrefix(r.url(), "nats://")
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	in := bufio.NewReader(c)
	roundTrip := func(msg string) {
		t.Helper()
		if _, err := c.Write([]byte(msg + "\n")); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		got, err := in.ReadString('\n')
		if err != nil || got != msg+"\n" {
			t.Fatalf("echo of %q: %q, %v", msg, got, err)
		}
	}
	roundTrip("before")

	r.partition()
	if _, err := c.Write([]byte("held-1\nheld-2\n")); err != nil {
		t.Fatal(err)
	}
	c2, err := net.Dial("tcp", addr) // accepted, then held
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if _, err := c2.Write([]byte("new\n")); err != nil {
		t.Fatal(err)
	}
	for _, conn := range []net.Conn{c, c2} {
		conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		if b, err := bufio.NewReader(conn).ReadString('\n'); err == nil || b != "" {
			t.Fatalf("partitioned, the relay let %q through (%v)", b, err)
		}
	}

	r.heal()
	for _, want := range []string{"held-1\n", "held-2\n"} {
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		if got, err := in.ReadString('\n'); err != nil || got != want {
			t.Fatalf("after Heal: %q, %v; want %q", got, err, want)
		}
	}
	c2.SetReadDeadline(time.Now().Add(2 * time.Second))
	if got, err := bufio.NewReader(c2).ReadString('\n'); err != nil || got != "new\n" {
		t.Fatalf("the connection made while partitioned, after Heal: %q, %v", got, err)
	}
	roundTrip("after")

	r.close()
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := in.ReadString('\n'); err == nil {
		t.Fatal("the connection is still open after close")
	}
}
