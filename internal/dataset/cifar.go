package dataset

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// CIFAR-10 binary format constants.
const (
	cifarClasses    = 10
	cifarSide       = 32
	cifarChannels   = 3
	cifarPixels     = cifarChannels * cifarSide * cifarSide // 3072
	cifarRecord     = 1 + cifarPixels                       // 3073
	cifarMaxRecords = 1 << 20                               // per batch file, about 3.2 GB
	cifarSubdir     = "cifar-10-batches-bin"                // what the official tarball unpacks to
)

// cifarFiles returns the batch file names of a CIFAR-10 split.
func cifarFiles(split Split) ([]string, error) {
	switch split {
	case Train:
		return []string{"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"}, nil
	case Test:
		return []string{"test_batch.bin"}, nil
	}
	return nil, split.valid()
}

// ReadCIFAR10Batch reads a whole CIFAR-10 binary batch file from r: records
// of 1 label byte followed by 3072 pixel bytes (3x32x32: the R, then G, then
// B plane, each row-major). The length must be a positive multiple of 3073
// bytes (at most 2^20 records); otherwise the ErrFormat error says how many
// bytes were read. Labels must be below 10 (ErrLabel). It returns the pixels
// of all records back to back (CHW per sample) and the labels.
func ReadCIFAR10Batch(r io.Reader) (pixels, labels []uint8, err error) {
	if r == nil {
		return nil, nil, fmt.Errorf("%w: nil io.Reader", ErrArgument)
	}
	const limit = int64(cifarMaxRecords) * cifarRecord
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, nil, readErr(err, "CIFAR-10 batch")
	}
	if int64(len(data)) > limit {
		return nil, nil, fmt.Errorf("%w: CIFAR-10 batch is larger than %d records of %d bytes", ErrFormat, cifarMaxRecords, cifarRecord)
	}
	if len(data) == 0 || len(data)%cifarRecord != 0 {
		return nil, nil, fmt.Errorf("%w: CIFAR-10 batch of %d bytes (%d whole records + %d bytes), want a positive multiple of the record size %d (1 label + %d pixel bytes)",
			ErrFormat, len(data), len(data)/cifarRecord, len(data)%cifarRecord, cifarRecord, cifarPixels)
	}
	n := len(data) / cifarRecord
	labels = make([]uint8, n)
	for i := range labels {
		labels[i] = data[i*cifarRecord]
	}
	if err := checkLabels(labels, cifarClasses); err != nil {
		return nil, nil, err
	}
	// Compact the pixels in place: record i moves to i*3072, which never
	// overtakes the source at i*3073+1, and copy handles the overlap.
	for i := 0; i < n; i++ {
		copy(data[i*cifarPixels:(i+1)*cifarPixels], data[i*cifarRecord+1:(i+1)*cifarRecord])
	}
	return data[: n*cifarPixels : n*cifarPixels], labels, nil
}

// ReadCIFAR10 reads a CIFAR-10 split from the binary batches in dir (or in
// dir/cifar-10-batches-bin, as the official tarball unpacks): Train is
// data_batch_1.bin .. data_batch_5.bin, Test is test_batch.bin. Like
// ReadMNIST, each file may also be gzipped with a .gz suffix. The result has
// C = 3, H = W = 32 and Classes = 10.
func ReadCIFAR10(dir string, split Split) (*Dataset, error) {
	files, err := cifarFiles(split)
	if err != nil {
		return nil, err
	}
	if dir == "" {
		return nil, fmt.Errorf("%w: empty CIFAR-10 directory name", ErrArgument)
	}
	if _, err := findFile(dir, files[0]); err != nil {
		sub := filepath.Join(dir, cifarSubdir)
		if st, serr := os.Stat(sub); serr == nil && st.IsDir() {
			dir = sub
		}
	}
	var pixels, labels [][]uint8
	total := 0
	for _, name := range files {
		var p, l []uint8
		err := withData(dir, name, func(f *dataFile) error {
			var err error
			p, l, err = ReadCIFAR10Batch(f)
			return err
		})
		if err != nil {
			return nil, err
		}
		pixels = append(pixels, p)
		labels = append(labels, l)
		total += len(l)
	}
	d := &Dataset{
		Name:    "cifar10-" + split.String(),
		N:       total,
		C:       cifarChannels,
		H:       cifarSide,
		W:       cifarSide,
		Classes: cifarClasses,
	}
	if len(files) == 1 {
		d.Pixels, d.Labels = pixels[0], labels[0]
		return d, nil
	}
	d.Pixels = make([]uint8, 0, total*cifarPixels)
	d.Labels = make([]uint8, 0, total)
	for i := range pixels {
		d.Pixels = append(d.Pixels, pixels[i]...)
		d.Labels = append(d.Labels, labels[i]...)
		pixels[i] = nil // let the batch be collected
	}
	return d, nil
}
