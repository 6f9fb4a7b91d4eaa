package dataset

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// idxImages encodes an IDX3 image file.
func idxImages(n, rows, cols int, pix []uint8) []byte {
	b := make([]byte, 16, 16+len(pix))
	binary.BigEndian.PutUint32(b[0:], idxImagesMagic)
	binary.BigEndian.PutUint32(b[4:], uint32(n))
	binary.BigEndian.PutUint32(b[8:], uint32(rows))
	binary.BigEndian.PutUint32(b[12:], uint32(cols))
	return append(b, pix...)
}

// idxLabels encodes an IDX1 label file.
func idxLabels(labels []uint8) []byte {
	b := make([]byte, 8, 8+len(labels))
	binary.BigEndian.PutUint32(b[0:], idxLabelsMagic)
	binary.BigEndian.PutUint32(b[4:], uint32(len(labels)))
	return append(b, labels...)
}

// cifarBatch encodes CIFAR-10 records.
func cifarBatch(pix, labels []uint8) []byte {
	var b []byte
	for i, l := range labels {
		b = append(b, l)
		b = append(b, pix[i*cifarPixels:(i+1)*cifarPixels]...)
	}
	return b
}

// gz compresses b.
func gz(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// seq returns n bytes i*mul+add (mod 256).
func seq(n, mul, add int) []uint8 {
	b := make([]uint8, n)
	for i := range b {
		b[i] = uint8(i*mul + add)
	}
	return b
}

func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// wantErr fails unless err wraps target and its message contains every
// string in parts.
func wantErr(t *testing.T, err, target error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got nil error, want %v", target)
	}
	if !errors.Is(err, target) {
		t.Fatalf("error %q does not wrap %q", err, target)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Fatalf("error %q does not mention %q", err, p)
		}
	}
}
