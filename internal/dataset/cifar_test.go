package dataset

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestReadCIFAR10BatchRoundTrip(t *testing.T) {
	pix := seq(4*cifarPixels, 5, 3)
	labels := []uint8{9, 0, 3, 3}
	gotPix, gotLabels, err := ReadCIFAR10Batch(bytes.NewReader(cifarBatch(pix, labels)))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(gotPix, pix) || !slices.Equal(gotLabels, labels) {
		t.Fatal("content differs from what was written")
	}
	if len(gotPix) != cap(gotPix) {
		t.Errorf("pixels has len %d cap %d; appending would overwrite", len(gotPix), cap(gotPix))
	}
}

func TestReadCIFAR10BatchErrors(t *testing.T) {
	one := cifarBatch(seq(cifarPixels, 1, 0), []uint8{4})
	tests := []struct {
		name string
		data []byte
		err  error
		msg  []string
	}{
		{"empty", nil, ErrFormat, []string{"of 0 bytes", "3073"}},
		{"short", one[:3072], ErrFormat, []string{"3072 bytes", "3073"}},
		{"long", append(slices.Clone(one), 1, 2), ErrFormat, []string{"3075 bytes", "1 whole records + 2 bytes", "3073"}},
		{"bad label", cifarBatch(seq(2*cifarPixels, 1, 0), []uint8{3, 10}), ErrLabel, []string{"label 10 at index 1", "< 10"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, l, err := ReadCIFAR10Batch(bytes.NewReader(tt.data))
			wantErr(t, err, tt.err, tt.msg...)
			if p != nil || l != nil {
				t.Error("non-nil result on error")
			}
		})
	}
}

// cifarFixture writes the batch files of split into dir, each with records
// records, gzipping every other file, and returns the expected dataset.
func cifarFixture(t *testing.T, dir string, split Split, records int) (pix, labels []uint8) {
	t.Helper()
	files, err := cifarFiles(split)
	if err != nil {
		t.Fatal(err)
	}
	for i, name := range files {
		p := seq(records*cifarPixels, 3+i, i)
		l := make([]uint8, records)
		for j := range l {
			l[j] = uint8((i + j) % 10)
		}
		data := cifarBatch(p, l)
		if i%2 == 1 {
			data, name = gz(t, data), name+".gz"
		}
		writeFile(t, dir, name, data)
		pix = append(pix, p...)
		labels = append(labels, l...)
	}
	return pix, labels
}

func TestReadCIFAR10Files(t *testing.T) {
	tests := []struct {
		split   Split
		subdir  string
		records int
	}{
		{Train, "", 3},
		{Test, "", 5},
		{Train, cifarSubdir, 2},
		{Test, cifarSubdir, 1},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%v/%q", tt.split, tt.subdir), func(t *testing.T) {
			dir := t.TempDir()
			files := filepath.Join(dir, tt.subdir)
			if err := os.MkdirAll(files, 0o755); err != nil {
				t.Fatal(err)
			}
			pix, labels := cifarFixture(t, files, tt.split, tt.records)
			d, err := ReadCIFAR10(dir, tt.split)
			if err != nil {
				t.Fatal(err)
			}
			if d.N != len(labels) || d.C != 3 || d.H != 32 || d.W != 32 || d.Classes != 10 || d.Name != "cifar10-"+tt.split.String() {
				t.Fatalf("got %q N=%d C=%d H=%d W=%d Classes=%d", d.Name, d.N, d.C, d.H, d.W, d.Classes)
			}
			if !slices.Equal(d.Pixels, pix) || !slices.Equal(d.Labels, labels) {
				t.Fatal("content differs from what was written")
			}
		})
	}
}

func TestReadCIFAR10Errors(t *testing.T) {
	good := cifarBatch(seq(cifarPixels, 1, 0), []uint8{1})
	tests := []struct {
		name  string
		files map[string][]byte
		err   error
		msg   []string
	}{
		{"missing batch", map[string][]byte{"data_batch_1.bin": good}, ErrNotFound, []string{"data_batch_2.bin"}},
		{"zero-length file", map[string][]byte{"test_batch.bin": {}}, ErrFormat, []string{"test_batch.bin", "0 bytes"}},
		{"not a multiple", map[string][]byte{"test_batch.bin": good[:3000]}, ErrFormat, []string{"test_batch.bin", "3000 bytes", "3073"}},
		{"bad label", map[string][]byte{"test_batch.bin": append([]byte{200}, good[1:]...)}, ErrLabel, []string{"test_batch.bin", "label 200"}},
		{"truncated gzip", map[string][]byte{"test_batch.bin.gz": gz(t, good)[:30]}, ErrTruncated, []string{"test_batch.bin.gz"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, data := range tt.files {
				writeFile(t, dir, name, data)
			}
			split := Test
			if _, ok := tt.files["data_batch_1.bin"]; ok {
				split = Train
			}
			d, err := ReadCIFAR10(dir, split)
			wantErr(t, err, tt.err, tt.msg...)
			if d != nil {
				t.Error("non-nil dataset on error")
			}
		})
	}
	t.Run("bad split", func(t *testing.T) {
		_, err := ReadCIFAR10(t.TempDir(), Split(-1))
		wantErr(t, err, ErrArgument, "split -1")
	})
	t.Run("empty dir", func(t *testing.T) {
		_, err := ReadCIFAR10("", Test)
		wantErr(t, err, ErrArgument)
	})
}
