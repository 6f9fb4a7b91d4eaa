package wire

import (
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// JetStreamDomain is the JetStream domain of every maas NATS server that
// stores (the full members of a cluster, `maas local`'s server). Clients
// address JetStream as $JS.maas.API.…, which the storing servers map to
// their own API: the only way a leaf server's clients (a worker host's
// own NATS server, which stores nothing) reach it.
const JetStreamDomain = "maas"

// JetStream is the JetStream context of nc, in JetStreamDomain.
func JetStream(nc *nats.Conn) (jetstream.JetStream, error) {
	return jetstream.NewWithDomain(nc, JetStreamDomain)
}
