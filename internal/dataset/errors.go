package dataset

import "errors"

// Sentinel errors. Every error the package returns for bad data or bad
// arguments wraps one of these; test for them with errors.Is.
var (
	// ErrFormat reports a file whose content is not the expected format:
	// wrong magic number, insane dimensions, trailing data, a size that is
	// not a whole number of records, or a corrupt gzip stream.
	ErrFormat = errors.New("dataset: bad format")
	// ErrTruncated reports a file that ends before the data its header
	// promises.
	ErrTruncated = errors.New("dataset: truncated data")
	// ErrMismatch reports files of one dataset that disagree, such as an
	// image file and a label file with different sample counts.
	ErrMismatch = errors.New("dataset: count mismatch")
	// ErrLabel reports a class label outside the dataset's class range.
	ErrLabel = errors.New("dataset: label out of range")
	// ErrNotFound reports dataset files that could not be located.
	ErrNotFound = errors.New("dataset: files not found")
	// ErrIndex reports a sample index outside 0..N-1.
	ErrIndex = errors.New("dataset: index out of range")
	// ErrShortBuffer reports an output buffer too small for a batch.
	ErrShortBuffer = errors.New("dataset: buffer too short")
	// ErrName reports a dataset name that is not letters, digits, '-',
	// '_' and '.' (see ValidName).
	ErrName = errors.New("dataset: invalid dataset name")
	// ErrNormalization reports invalid normalisation parameters.
	ErrNormalization = errors.New("dataset: bad normalization")
	// ErrUnknownKind reports a dataset kind that Open does not know.
	ErrUnknownKind = errors.New("dataset: unknown dataset kind")
	// ErrArgument reports any other invalid argument, such as an unknown
	// Split, an empty directory name or an inconsistent Dataset value.
	ErrArgument = errors.New("dataset: invalid argument")
)
