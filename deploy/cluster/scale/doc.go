// Package scale measures how a maas training cluster scales out, on one
// machine: a Testbed is a real cluster (NATS, coordinator, parameter
// servers, workers as separate processes, secured, launched over SSH as
// `maas cluster up` launches them) on hosts emulated by internal/netemu,
// whose links are shaped to a chosen rate. Run submits a benchmark job
// (synthetic compute, see jobspec.Benchmark) with time dilated so that
// the machine's CPU does not set the pace, and returns the emulated
// cluster's throughput, its step split, bytes per link and the servers'
// CPU per step. `maas bench scale` drives it; docs/scaling.md has the
// method and the figures.
package scale
