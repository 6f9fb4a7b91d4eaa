package coordinator

import (
	"crypto/tls"

	"github.com/hashicorp/raft"
)

// ListenRaftTLS exposes the TLS stream layer to the tests, as a Raft
// stream.
func ListenRaftTLS(addr string, cfg *tls.Config) (raft.StreamLayer, error) {
	return listenRaftTLS(addr, cfg)
}
