// Package deploy launches maas on bare metal and serves trained models: the
// cluster file, the launcher and the Open Inference Protocol V2 endpoint.
//
// It is built by the cluster-launch and serving work.
package deploy
