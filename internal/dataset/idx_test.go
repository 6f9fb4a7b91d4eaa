package dataset

import (
	"bytes"
	"runtime"
	"slices"
	"testing"
)

func TestReadIDXImagesRoundTrip(t *testing.T) {
	pix := seq(3*4*5, 7, 1)
	n, rows, cols, got, err := ReadIDXImages(bytes.NewReader(idxImages(3, 4, 5, pix)))
	if err != nil {
		t.Fatal(err)
	}
	if n != 3 || rows != 4 || cols != 5 || !slices.Equal(got, pix) {
		t.Fatalf("got n=%d rows=%d cols=%d pixels=%v, want 3 4 5 %v", n, rows, cols, got, pix)
	}
}

func TestReadIDXImagesLarge(t *testing.T) {
	// Large enough that readExact grows its buffer several times.
	pix := seq(300*20*30, 13, 5)
	n, _, _, got, err := ReadIDXImages(bytes.NewReader(idxImages(300, 20, 30, pix)))
	if err != nil || n != 300 || !slices.Equal(got, pix) {
		t.Fatalf("round trip of %d bytes failed: n=%d err=%v", len(pix), n, err)
	}
}

func TestReadIDXLabelsRoundTrip(t *testing.T) {
	for _, labels := range [][]uint8{{}, {0}, seq(1000, 1, 0)} {
		got, err := ReadIDXLabels(bytes.NewReader(idxLabels(labels)))
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, labels) {
			t.Fatalf("got %v, want %v", got, labels)
		}
	}
}

func TestReadIDXImagesErrors(t *testing.T) {
	valid := idxImages(2, 3, 3, seq(18, 1, 0))
	hdr := func(magic uint32, n, r, c uint32) []byte {
		b := idxImages(int(n), int(r), int(c), nil)
		b[0], b[1], b[2], b[3] = byte(magic>>24), byte(magic>>16), byte(magic>>8), byte(magic)
		return b
	}
	tests := []struct {
		name string
		data []byte
		err  error
		msg  string
	}{
		{"empty", nil, ErrTruncated, "expected 16 bytes, got 0"},
		{"short header", valid[:10], ErrTruncated, "expected 16 bytes, got 10"},
		{"truncated data", valid[:len(valid)-1], ErrTruncated, "expected 18 bytes, got 17"},
		{"trailing data", append(slices.Clone(valid), 0), ErrFormat, "unexpected data"},
		{"label magic", hdr(idxLabelsMagic, 1, 1, 1), ErrFormat, "expected 0x00000803, got 0x00000801"},
		{"gzip data", gz(t, valid), ErrFormat, "gzip"},
		{"zero rows", hdr(idxImagesMagic, 1, 0, 5), ErrFormat, "size 0x5"},
		{"huge cols", hdr(idxImagesMagic, 1, 5, 4097), ErrFormat, "5x4097"},
		{"huge count", hdr(idxImagesMagic, 10_000_001, 1, 1), ErrFormat, "10000001"},
		{"huge total", hdr(idxImagesMagic, 10_000_000, 4096, 4096), ErrFormat, "limit"},
		{"lying header", hdr(idxImagesMagic, 100_000, 100, 100), ErrTruncated, "got 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, _, pix, err := ReadIDXImages(bytes.NewReader(tt.data))
			wantErr(t, err, tt.err, tt.msg)
			if pix != nil {
				t.Errorf("pixels = %d bytes on error, want nil", len(pix))
			}
		})
	}
}

func TestReadIDXLabelsErrors(t *testing.T) {
	valid := idxLabels([]uint8{1, 2, 3})
	tests := []struct {
		name string
		data []byte
		err  error
		msg  string
	}{
		{"empty", nil, ErrTruncated, "expected 8 bytes, got 0"},
		{"short header", valid[:5], ErrTruncated, "got 5"},
		{"truncated", valid[:len(valid)-2], ErrTruncated, "expected 3 bytes, got 1"},
		{"trailing", append(slices.Clone(valid), 9), ErrFormat, "unexpected data"},
		{"image magic", idxImages(1, 1, 1, []uint8{0}), ErrFormat, "got 0x00000803"},
		{"huge count", []byte{0, 0, 8, 1, 0xff, 0xff, 0xff, 0xff}, ErrFormat, "4294967295"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := ReadIDXLabels(bytes.NewReader(tt.data))
			wantErr(t, err, tt.err, tt.msg)
			if l != nil {
				t.Errorf("labels = %v on error, want nil", l)
			}
		})
	}
}

func TestReadIDXNilReader(t *testing.T) {
	if _, _, _, _, err := ReadIDXImages(nil); err == nil {
		t.Error("ReadIDXImages(nil) succeeded")
	}
	if _, err := ReadIDXLabels(nil); err == nil {
		t.Error("ReadIDXLabels(nil) succeeded")
	}
	if _, _, err := ReadCIFAR10Batch(nil); err == nil {
		t.Error("ReadCIFAR10Batch(nil) succeeded")
	}
}

// TestReadIDXHostileHeaderMemory checks that a header announcing gigabytes
// followed by little data costs memory in proportion to the data.
func TestReadIDXHostileHeaderMemory(t *testing.T) {
	data := idxImages(250_000, 128, 128, seq(100_000, 1, 0)) // announces 4 GB
	labels := []byte{0, 0, 8, 1, 0x00, 0x98, 0x96, 0x80}     // announces 10M labels
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, _, _, _, err1 := ReadIDXImages(bytes.NewReader(data))
	_, err2 := ReadIDXLabels(bytes.NewReader(labels))
	runtime.ReadMemStats(&after)
	if err1 == nil || err2 == nil {
		t.Fatalf("want truncation errors, got %v and %v", err1, err2)
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > 4<<20 {
		t.Errorf("allocated %d bytes for %d bytes of input", got, len(data)+len(labels))
	}
}
