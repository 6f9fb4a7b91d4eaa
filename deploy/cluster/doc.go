// Package cluster describes a bare-metal maas cluster and makes its
// secrets.
//
// A cluster file (cluster.yaml) names the cluster, the hosts it runs on and
// the roles each host plays: nats, coordinator, paramserver, worker and
// serve. Load and Parse read one and check it; Processes lists every
// process it implies, with its id and ports, and NATSRoutes, NATSServers and
// RaftPeers give the addresses the processes need to find each other.
//
// Init makes the cluster's secrets in a directory of their own: a
// certificate authority and one TLS certificate per host, one NATS user
// nkey per process with the permissions of its role (Permissions, written
// as a NATS server authorization block), and the API tokens of the roles
// admin, submit and read (Tokens checks them). Every file is written whole
// or not at all.
//
// docs/deploy.md is the reference of the cluster file and of the security
// model.
package cluster
