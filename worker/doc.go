// Package worker runs the training loop of one cluster member. For each
// step t of its assignment it reads its slice of global batch t (rank r of
// K takes the r-th contiguous slice of perm_E[i·B:(i+1)·B], where perm_E is
// drawn from the job's seed and the epoch), computes the mean gradient over
// that slice, pushes it chunk by chunk to the parameter servers (each push
// acknowledged or retried), then waits for θ_{t+1}, which the servers fan
// out over NATS, pulling any chunk that does not arrive in time.
//
// A worker keeps no state that matters: the parameters come from the
// servers, and the batch of each step is a pure function of the job.
package worker
