// Package deploy groups what runs maas for real: deploy/cluster launches a
// cluster on bare metal over SSH from a cluster file (secrets, TLS, systemd
// units, rolling upgrades), and deploy/serve is the serving endpoint (KServe
// Open Inference Protocol V2).
package deploy
