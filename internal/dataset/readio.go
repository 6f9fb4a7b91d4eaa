package dataset

import (
	"bufio"
	"compress/flate"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
)

// initialReadBuf is the first buffer size readExact allocates; it then
// doubles as data arrives, never beyond the size the header announced.
const initialReadBuf = 64 << 10

// readExact reads exactly n bytes from r. It allocates in proportion to the
// data actually received, not to n, so a lying header cannot force a huge
// allocation. On a short read it returns an ErrTruncated error describing
// what (e.g. "image data") was expected and how much arrived.
func readExact(r io.Reader, n int64, what string) ([]byte, error) {
	if n < 0 || n > int64(maxInt) {
		return nil, fmt.Errorf("%w: %s of %d bytes does not fit in memory", ErrFormat, what, n)
	}
	buf := make([]byte, 0, int(min(n, initialReadBuf)))
	for int64(len(buf)) < n {
		if len(buf) == cap(buf) {
			grow := int(min(n-int64(len(buf)), int64(cap(buf))))
			buf = slices.Grow(buf, grow)
		}
		want := int(min(n-int64(len(buf)), int64(cap(buf)-len(buf))))
		k, err := io.ReadFull(r, buf[len(buf):len(buf)+want])
		buf = buf[:len(buf)+k]
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return nil, fmt.Errorf("%w: %s: expected %d bytes, got %d", ErrTruncated, what, n, len(buf))
			}
			return nil, readErr(err, what)
		}
	}
	return buf, nil
}

// expectEOF checks that r has no data left after a complete file. Reading
// to the end also makes gzip verify its checksum.
func expectEOF(r io.Reader, what string) error {
	var one [1]byte
	k, err := io.ReadFull(r, one[:])
	if k > 0 {
		return fmt.Errorf("%w: unexpected data after %s", ErrFormat, what)
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return readErr(err, "end of "+what)
	}
	return nil
}

// readErr wraps a read error; corrupt compressed data is reported as
// ErrFormat, a stream cut short as ErrTruncated.
func readErr(err error, what string) error {
	var corrupt flate.CorruptInputError
	switch {
	case errors.Is(err, gzip.ErrChecksum), errors.Is(err, gzip.ErrHeader), errors.As(err, &corrupt):
		return fmt.Errorf("%w: %s: corrupt gzip stream: %w", ErrFormat, what, err)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return fmt.Errorf("%w: %s: %w", ErrTruncated, what, err)
	}
	return fmt.Errorf("dataset: reading %s: %w", what, err)
}

// dataFile is an open dataset file, transparently gunzipped.
type dataFile struct {
	io.Reader
	Path string // the file actually opened
	f    *os.File
	gz   *gzip.Reader
}

// Close closes the file.
func (d *dataFile) Close() error {
	if d.gz != nil {
		d.gz.Close() // only reports the stream's own error, seen by the reader
	}
	return d.f.Close()
}

// findFile returns dir/base if it exists, else dir/base.gz if that exists,
// else an ErrNotFound error naming both.
func findFile(dir, base string) (string, error) {
	p := filepath.Join(dir, base)
	for _, c := range []string{p, p + ".gz"} {
		st, err := os.Stat(c)
		if err == nil && st.Mode().IsRegular() {
			return c, nil
		}
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("dataset: %w", err)
		}
	}
	return "", fmt.Errorf("%w: neither %s nor %s.gz exists", ErrNotFound, p, p)
}

// openData opens dir/base or dir/base.gz (see findFile). Whatever its name,
// the file is decompressed if and only if it starts with the gzip magic
// bytes 0x1f 0x8b.
func openData(dir, base string) (*dataFile, error) {
	path, err := findFile(dir, base)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("dataset: %w", err)
	}
	br := bufio.NewReaderSize(f, 1<<16)
	d := &dataFile{Reader: br, Path: path, f: f}
	magic, err := br.Peek(2)
	if err != nil && !errors.Is(err, io.EOF) {
		f.Close()
		return nil, fmt.Errorf("dataset: reading %s: %w", path, err)
	}
	if len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		gz, err := gzip.NewReader(br)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("%s: %w", path, readErr(err, "gzip header"))
		}
		d.gz = gz
		d.Reader = gz
	}
	return d, nil
}
