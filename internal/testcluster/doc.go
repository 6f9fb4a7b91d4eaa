// Package testcluster is the test harness for maas's distributed roles,
// all in one process: Start runs the cluster `maas local` runs (package
// embedded: a NATS server, coordinators on real Raft on disk, parameter
// servers and workers, each on its own connection) with testing.TB
// helpers around it: Kill, StartWorker, StartServer, Restart, RestartNATS,
// Partition and Heal (a member's NATS traffic held both ways), Submit,
// WaitForStep and WaitJob. RunStatic runs parameter servers and workers on
// a fixed membership without a coordinator, for the data-plane tests
// (sync-SGD equivalence, each sample once per epoch).
package testcluster
