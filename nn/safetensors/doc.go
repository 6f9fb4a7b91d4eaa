// Package safetensors reads and writes the safetensors tensor file format
// (https://github.com/huggingface/safetensors) using only the standard
// library.
//
// # File layout
//
// A safetensors file is:
//
//	8 bytes   N, the header length, unsigned little-endian 64-bit integer
//	N bytes   the header: a UTF-8 JSON object, possibly padded with trailing spaces
//	rest      the byte buffer holding every tensor's data
//
// The header maps each tensor name to an object
//
//	{"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}
//
// where begin and end are byte offsets relative to the start of the buffer.
// The optional key "__metadata__" maps to an object of string to string.
// Tensor data is little-endian and row-major (C order).
//
// # Reading
//
// [Decode], [Read] and [ReadFile] validate the whole file before returning
// it: the header length must fit in the file and be at most 100 MB
// ([MaxHeaderSize]); the header must be a JSON object without duplicate
// names; every dtype must be known; dimensions must be non-negative; each
// tensor's byte range must match its shape and dtype; and the tensors must
// exactly tile the buffer (no out-of-range offsets, overlaps, gaps or
// trailing bytes). Every such error wraps [ErrFormat] plus a more specific
// sentinel ([ErrTruncated], [ErrHeaderTooLarge], [ErrHeader], [ErrDType],
// [ErrShape], [ErrOffsets], [ErrCoverage] or [ErrDuplicate]), so callers can
// test it with [errors.Is]; I/O errors from the underlying reader are
// returned wrapped as they are. The readers never panic on malformed input and
// never allocate memory based on a size that has not been checked.
//
// # Writing
//
// [Encode] and [WriteFile] validate each tensor's data length against its
// shape and dtype, store the tensors in the buffer in sorted name order,
// write "__metadata__" first (when present) and pad the header with spaces
// so the buffer starts at a multiple of 8 bytes. The output is deterministic:
// the same [File] always encodes to the same bytes. [WriteFile] is atomic: it
// writes a temporary file in the target directory, syncs it and renames it
// over the target, so readers see either the old file or the complete new
// one.
//
// # Conversions
//
// [Tensor.Float32] and [Tensor.Int64] decode the raw bytes into Go slices;
// [F32] builds an F32 tensor from a []float32.
package safetensors
