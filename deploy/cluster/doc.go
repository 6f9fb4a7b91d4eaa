// Package cluster describes a bare-metal maas cluster, makes its secrets
// and runs it over SSH.
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
// Up, Status, Down and Upgrade run the cluster over SSH
// (golang.org/x/crypto/ssh, host keys checked against known_hosts): Up
// installs the binary and each host's part of the secrets under its
// data_dir and starts the processes stage by stage (Stages), waiting for
// each to be ready; Args is the command line of each process. Processes run
// detached with a pid file, or as systemd units.
//
// docs/deploy.md is the reference of the cluster file and of the security
// model.
package cluster
