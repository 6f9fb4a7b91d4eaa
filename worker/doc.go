// Package worker runs the training loop of a cluster member: it takes an
// assignment from the coordinator, reads its slice of each global batch,
// pulls parameters, computes gradients with the nn package and pushes them
// to the parameter servers over NATS.
//
// It is built by the distributed-training work; the single-process loop it
// shares lives in internal/train.
package worker
