// Package cluster is the test harness for maas's distributed roles: it
// starts an embedded NATS server and parameter servers and workers on it in
// one process. Static assignments stand in for the coordinator here (a
// labelled stand-in: the coordinator's own tests drive the same roles
// through Raft).
package cluster
