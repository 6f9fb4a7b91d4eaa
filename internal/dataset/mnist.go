package dataset

import (
	"fmt"
)

// mnistClasses is the number of MNIST classes (digits 0..9).
const mnistClasses = 10

// mnistFiles returns the base names (without a .gz suffix) of the image and
// label files of an MNIST split.
func mnistFiles(split Split) (images, labels string, err error) {
	switch split {
	case Train:
		return "train-images-idx3-ubyte", "train-labels-idx1-ubyte", nil
	case Test:
		return "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", nil
	}
	return "", "", split.valid()
}

// ReadMNIST reads an MNIST split from dir: train-images-idx3-ubyte and
// train-labels-idx1-ubyte for Train, t10k-images-idx3-ubyte and
// t10k-labels-idx1-ubyte for Test. Each file may be raw or have a .gz
// suffix (the raw name is tried first); gzip is detected by its magic bytes,
// not by the name. It checks that the files hold the same, non-zero number
// of samples and that every label is below 10. The result has C = 1,
// H = rows, W = cols and Classes = 10.
func ReadMNIST(dir string, split Split) (*Dataset, error) {
	imgName, lblName, err := mnistFiles(split)
	if err != nil {
		return nil, err
	}
	var (
		n, rows, cols int
		pixels        []uint8
		imgPath       string
	)
	err = withData(dir, imgName, func(f *dataFile) error {
		imgPath = f.Path
		var err error
		n, rows, cols, pixels, err = ReadIDXImages(f)
		return err
	})
	if err != nil {
		return nil, err
	}
	if n == 0 {
		return nil, fmt.Errorf("%w: %s holds no images", ErrFormat, imgPath)
	}
	var (
		labels  []uint8
		lblPath string
	)
	err = withData(dir, lblName, func(f *dataFile) error {
		lblPath = f.Path
		var err error
		labels, err = ReadIDXLabels(f)
		return err
	})
	if err != nil {
		return nil, err
	}
	if len(labels) != n {
		return nil, fmt.Errorf("%w: %s holds %d images but %s holds %d labels",
			ErrMismatch, imgPath, n, lblPath, len(labels))
	}
	if err := checkLabels(labels, mnistClasses); err != nil {
		return nil, fmt.Errorf("%s: %w", lblPath, err)
	}
	return &Dataset{
		Name:    "mnist-" + split.String(),
		N:       n,
		C:       1,
		H:       rows,
		W:       cols,
		Classes: mnistClasses,
		Pixels:  pixels,
		Labels:  labels,
	}, nil
}

// withData opens dir/base (or base.gz), calls read on it, closes it and
// prefixes any error from read with the file's path.
func withData(dir, base string, read func(*dataFile) error) error {
	f, err := openData(dir, base)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := read(f); err != nil {
		return fmt.Errorf("%s: %w", f.Path, err)
	}
	return nil
}

// checkLabels returns an ErrLabel error for the first label >= classes.
func checkLabels(labels []uint8, classes int) error {
	for i, l := range labels {
		if int(l) >= classes {
			return fmt.Errorf("%w: label %d at index %d, want < %d", ErrLabel, l, i, classes)
		}
	}
	return nil
}
