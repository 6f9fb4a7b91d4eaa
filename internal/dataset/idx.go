package dataset

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// IDX magic numbers: two zero bytes, the element type (0x08 = unsigned
// byte) and the number of dimensions.
const (
	idxImagesMagic = 0x00000803
	idxLabelsMagic = 0x00000801
)

// Limits on IDX headers, checked before anything is allocated.
const (
	maxIDXCount = 10_000_000 // samples per file
	maxIDXSide  = 4096       // rows and cols
	maxIDXBytes = 1 << 32    // total pixel bytes (4 GiB)
)

// ReadIDXImages reads an IDX3 unsigned-byte image file (magic 0x00000803,
// then big-endian uint32 n, rows, cols, then n*rows*cols pixel bytes) from
// r, which must hold exactly one such file. It checks that rows and cols are
// in 1..4096, n <= 10,000,000 and the pixel data at most 4 GiB before
// allocating anything, and that the data is neither truncated nor followed
// by extra bytes. Errors wrap ErrFormat or ErrTruncated.
func ReadIDXImages(r io.Reader) (n, rows, cols int, pixels []uint8, err error) {
	var hdr [16]byte
	if err := readHeader(r, hdr[:], idxImagesMagic, "IDX image"); err != nil {
		return 0, 0, 0, nil, err
	}
	un := binary.BigEndian.Uint32(hdr[4:])
	ur := binary.BigEndian.Uint32(hdr[8:])
	uc := binary.BigEndian.Uint32(hdr[12:])
	if un > maxIDXCount {
		return 0, 0, 0, nil, fmt.Errorf("%w: IDX image count %d exceeds the limit %d", ErrFormat, un, maxIDXCount)
	}
	if ur < 1 || ur > maxIDXSide || uc < 1 || uc > maxIDXSide {
		return 0, 0, 0, nil, fmt.Errorf("%w: IDX image size %dx%d, want rows and cols in 1..%d", ErrFormat, ur, uc, maxIDXSide)
	}
	total := int64(un) * int64(ur) * int64(uc)
	if total > maxIDXBytes {
		return 0, 0, 0, nil, fmt.Errorf("%w: IDX header announces %d images of %dx%d = %d bytes, over the %d-byte limit",
			ErrFormat, un, ur, uc, total, int64(maxIDXBytes))
	}
	what := fmt.Sprintf("IDX image data (%d images of %dx%d)", un, ur, uc)
	pixels, err = readExact(r, total, what)
	if err != nil {
		return 0, 0, 0, nil, err
	}
	if err := expectEOF(r, what); err != nil {
		return 0, 0, 0, nil, err
	}
	return int(un), int(ur), int(uc), pixels, nil
}

// ReadIDXLabels reads an IDX1 unsigned-byte label file (magic 0x00000801,
// then a big-endian uint32 count n <= 10,000,000, then n label bytes) from
// r, which must hold exactly one such file. Any label value 0..255 is
// accepted; ReadMNIST checks the class range. Errors wrap ErrFormat or
// ErrTruncated.
func ReadIDXLabels(r io.Reader) (labels []uint8, err error) {
	var hdr [8]byte
	if err := readHeader(r, hdr[:], idxLabelsMagic, "IDX label"); err != nil {
		return nil, err
	}
	un := binary.BigEndian.Uint32(hdr[4:])
	if un > maxIDXCount {
		return nil, fmt.Errorf("%w: IDX label count %d exceeds the limit %d", ErrFormat, un, maxIDXCount)
	}
	what := fmt.Sprintf("IDX label data (%d labels)", un)
	labels, err = readExact(r, int64(un), what)
	if err != nil {
		return nil, err
	}
	if err := expectEOF(r, what); err != nil {
		return nil, err
	}
	return labels, nil
}

// readHeader fills hdr from r and checks that it starts with the magic
// number want. The magic is checked as soon as its 4 bytes are in, so a
// short file of the wrong kind is reported as such. A stream that ends
// early is ErrTruncated.
func readHeader(r io.Reader, hdr []byte, want uint32, what string) error {
	if r == nil {
		return fmt.Errorf("%w: nil io.Reader", ErrArgument)
	}
	k, err := io.ReadFull(r, hdr[:4])
	if err == nil {
		if err := checkMagic(hdr[:4], want, what); err != nil {
			return err
		}
		var m int
		m, err = io.ReadFull(r, hdr[4:])
		k += m
	}
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("%w: %s header: expected %d bytes, got %d", ErrTruncated, what, len(hdr), k)
		}
		return readErr(err, what+" header")
	}
	return nil
}

// checkMagic compares the 4-byte magic number with want, naming the other
// IDX kind in the error when the file is of that kind.
func checkMagic(b []byte, want uint32, what string) error {
	got := binary.BigEndian.Uint32(b)
	if got == want {
		return nil
	}
	hint := ""
	switch {
	case got == idxImagesMagic:
		hint = " (this is an IDX image file)"
	case got == idxLabelsMagic:
		hint = " (this is an IDX label file)"
	case b[0] == 0x1f && b[1] == 0x8b:
		hint = " (the data is gzip-compressed)"
	}
	return fmt.Errorf("%w: %s magic: expected 0x%08x, got 0x%08x%s", ErrFormat, what, want, got, hint)
}
