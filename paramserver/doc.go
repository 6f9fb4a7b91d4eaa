// Package paramserver owns contiguous key ranges of a model's flat
// parameter vector: it aggregates the workers' gradients for each step in a
// fixed member order, applies the optimizer from package nn, publishes the
// new parameters and writes checkpoints.
//
// It is built by the distributed-training work.
package paramserver
