package dataset

import (
	"fmt"
	"strings"
)

// kinds lists the dataset kinds accepted by Open.
var kinds = []string{"mnist", "cifar10"}

// Open resolves a dataset by kind and split. Kind is "mnist" (dir "" means
// DefaultMNISTDir()) or "cifar10" (dir required); it is matched
// case-insensitively. An unknown kind gives an ErrUnknownKind error naming
// the kinds accepted.
func Open(kind, dir string, split Split) (*Dataset, error) {
	switch strings.ToLower(strings.TrimSpace(kind)) {
	case "mnist":
		if dir == "" {
			d, err := DefaultMNISTDir()
			if err != nil {
				return nil, err
			}
			dir = d
		}
		return ReadMNIST(dir, split)
	case "cifar10":
		if dir == "" {
			return nil, fmt.Errorf("%w: dataset kind \"cifar10\" needs a directory holding the CIFAR-10 binary batches", ErrArgument)
		}
		return ReadCIFAR10(dir, split)
	}
	return nil, fmt.Errorf("%w: %q (accepted: %s)", ErrUnknownKind, kind, strings.Join(kinds, ", "))
}
