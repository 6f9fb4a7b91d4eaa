// Package coordinator is maas's control plane: a Raft-replicated state
// machine (hashicorp/raft, with raft-boltdb/v2 on disk and the TCP
// transport) holding jobs, registered workers and parameter servers,
// membership epochs, checkpoints and the model index, and the HTTP API the
// CLI talks to.
//
// Every change is a Command applied by the deterministic FSM; commands carry
// a request id, and the FSM ignores an id it has applied, so a client that
// retries after a lost leadership does not apply twice. Only the leader
// schedules: it subscribes to the control subjects while it leads, tracks
// heartbeats and step reports in memory, starts queued jobs on idle members
// and sends them their assignments. Followers redirect API calls to the
// leader.
//
// The API is plain HTTP and open unless Config.TLS (HTTPS, optionally
// mutual) and Config.Tokens (bearer tokens with roles, checked per route
// by the routes table in http.go) are set; a follower checks the token
// before it redirects, to an https:// leader when it speaks TLS itself.
package coordinator
