// Package cluster is the test harness for maas's distributed roles, all in
// one process on an embedded NATS server: Start runs coordinators (real
// Raft on disk), parameter servers and workers, with Kill, Restart,
// RestartNATS, WaitForStep and WaitJob; RunStatic runs parameter servers
// and workers on a fixed membership without a coordinator, for the
// data-plane tests (sync-SGD equivalence, each sample once per epoch).
package cluster
