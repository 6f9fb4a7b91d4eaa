// Package paramserver owns contiguous key ranges of a model's flat
// parameter vector and runs synchronous SGD on them, as docs/architecture.md
// ("The synchronous step") lays out: for step t of membership epoch e it
// acknowledges each rank's gradient chunks (dropping duplicates, refusing
// stale and future steps and other epochs), and once every rank has pushed
// every chunk of its range it sums Σ_r (n_r/B)·g_r in rank order, checks
// the sum is finite, applies the optimizer from package nn and publishes
// θ_{t+1} chunk by chunk on the job's parameter subject, keeping it for
// explicit pulls. A barrier that waits longer than its timeout reports the
// missing ranks instead of hanging.
package paramserver
