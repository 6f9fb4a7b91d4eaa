package dataset

import (
	"bytes"
	"errors"
	"testing"
)

// fuzzSentinels are the errors the parsers may return for bad input.
var fuzzSentinels = []error{ErrFormat, ErrTruncated, ErrLabel}

func checkFuzzErr(t *testing.T, err error) {
	t.Helper()
	for _, s := range fuzzSentinels {
		if errors.Is(err, s) {
			return
		}
	}
	t.Fatalf("error %q wraps none of the package's sentinel errors", err)
}

func FuzzReadIDXImages(f *testing.F) {
	valid := idxImages(2, 3, 4, seq(24, 3, 1))
	f.Add(valid)
	f.Add(idxImages(0, 1, 1, nil))
	f.Add(valid[:20])                                     // truncated
	f.Add(valid[:7])                                      // short header
	f.Add(append(append([]byte{}, valid...), 1))          // trailing byte
	f.Add(idxLabels([]uint8{1, 2}))                       // wrong magic
	f.Add(idxImages(10_000_000, 4096, 4096, nil))         // hostile header
	f.Add(idxImages(200_000, 100, 100, []uint8{1, 2, 3})) // lying header
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		n, rows, cols, pix, err := ReadIDXImages(bytes.NewReader(data))
		if err != nil {
			checkFuzzErr(t, err)
			return
		}
		if len(pix) != n*rows*cols || len(data) != 16+len(pix) || !bytes.Equal(pix, data[16:]) {
			t.Fatalf("n=%d rows=%d cols=%d: %d pixels from %d bytes", n, rows, cols, len(pix), len(data))
		}
	})
}

func FuzzReadIDXLabels(f *testing.F) {
	valid := idxLabels([]uint8{0, 1, 9, 255})
	f.Add(valid)
	f.Add(idxLabels(nil))
	f.Add(valid[:10])
	f.Add(valid[:3])
	f.Add(append(append([]byte{}, valid...), 1))
	f.Add(idxImages(1, 1, 1, []uint8{0}))
	f.Add([]byte{0, 0, 8, 1, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0, 0, 8, 1, 0x00, 0x98, 0x96, 0x80})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		labels, err := ReadIDXLabels(bytes.NewReader(data))
		if err != nil {
			checkFuzzErr(t, err)
			return
		}
		if len(data) != 8+len(labels) || !bytes.Equal(labels, data[8:]) {
			t.Fatalf("%d labels from %d bytes", len(labels), len(data))
		}
	})
}

func FuzzReadCIFAR10Batch(f *testing.F) {
	valid := cifarBatch(seq(2*cifarPixels, 7, 0), []uint8{3, 9})
	f.Add(valid)
	f.Add(valid[:cifarRecord])
	f.Add(valid[:cifarRecord-1])
	f.Add(valid[:100])
	f.Add(append(append([]byte{}, valid...), 0))
	f.Add(append([]byte{10}, valid[1:]...)) // bad label
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		pix, labels, err := ReadCIFAR10Batch(bytes.NewReader(data))
		if err != nil {
			checkFuzzErr(t, err)
			return
		}
		n := len(labels)
		if n == 0 || len(data) != n*cifarRecord || len(pix) != n*cifarPixels {
			t.Fatalf("%d labels and %d pixels from %d bytes", n, len(pix), len(data))
		}
		for i := range n {
			if labels[i] != data[i*cifarRecord] || labels[i] >= 10 ||
				!bytes.Equal(pix[i*cifarPixels:(i+1)*cifarPixels], data[i*cifarRecord+1:(i+1)*cifarRecord]) {
				t.Fatalf("record %d differs from its input", i)
			}
		}
	})
}
