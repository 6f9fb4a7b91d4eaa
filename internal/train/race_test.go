//go:build race

package train

// raceEnabled: the tests run under the race detector, which slows the
// single-threaded reference backend too much for the golden trajectories.
const raceEnabled = true
