// Package worker runs the training loop of one cluster member. For each
// step t of its assignment it reads its slice of global batch t (rank r of
// K takes the r-th contiguous slice of perm_E[i·B:(i+1)·B], where perm_E is
// drawn from the job's seed and the epoch), computes the mean gradient over
// that slice and pushes it bucket by bucket to the parameter servers (each
// push acknowledged or retried), or to its host's aggregator. With the
// job's overlap (the default) a bucket goes as soon as backward has
// finished it, and the next forward takes θ_{t+1} bucket by bucket as the
// servers fan it out over NATS; a bucket that does not arrive in time is
// pulled. With compression the pushes go through the worker's error
// feedback, and θ arrives as its change since the last step.
//
// A worker keeps no state that matters: the parameters come from the
// servers, and the batch of each step is a pure function of the job.
package worker
