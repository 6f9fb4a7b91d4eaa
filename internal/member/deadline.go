package member

import (
	"time"

	"github.com/nats-io/nats.go"
)

// ReconnectGrace is added to a wait that starts over after its connection
// came back: the other processes reconnect on their own schedules (NATS
// clients retry every 250 ms in maas's roles, every 2 s by default), and
// their traffic may come that much later.
const ReconnectGrace = 5 * time.Second

// Deadline bounds a wait on NATS traffic by time spent connected: while
// the connection is down, and after it comes back, the wait starts over
// with its whole limit (plus ReconnectGrace once it came back). A NATS outage therefore never expires a step or
// barrier wait by itself; the coordinator pauses the job instead when the
// outage outlasts the job's barrier timeout (docs/reliability.md).
type Deadline struct {
	nc         *nats.Conn
	limit      time.Duration
	start      time.Time
	reconnects uint64
	grace      time.Duration
}

// NewDeadline starts a wait of limit on nc.
func NewDeadline(nc *nats.Conn, limit time.Duration) *Deadline {
	return &Deadline{nc: nc, limit: limit, start: time.Now(), reconnects: nc.Stats().Reconnects}
}

// Expired reports whether limit has passed since the wait began or since
// the connection last came back, whichever is later.
func (d *Deadline) Expired() bool {
	now := time.Now()
	if r := d.nc.Stats().Reconnects; r != d.reconnects || !d.nc.IsConnected() {
		d.start, d.reconnects, d.grace = now, r, ReconnectGrace
		return false
	}
	return now.Sub(d.start) > d.limit+d.grace
}
