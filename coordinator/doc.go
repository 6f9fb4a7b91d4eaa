// Package coordinator is maas's control plane: a Raft-replicated state
// machine (hashicorp/raft) holding jobs, membership, shard assignments, the
// committed step cursor, checkpoints and the model index, with the HTTP API
// the job CLI talks to. Only the leader schedules.
//
// It is built by the distributed-training work; training in one process
// (maas train) does not need it.
package coordinator
