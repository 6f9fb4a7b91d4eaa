package dataset

import (
	"fmt"
	"strings"
)

// Split names a part of a dataset.
type Split int

// The splits of a dataset.
const (
	Train Split = iota // the training part
	Test               // the held-out test part
)

// String returns "train" or "test", or "Split(n)" for an unknown value.
func (s Split) String() string {
	switch s {
	case Train:
		return "train"
	case Test:
		return "test"
	}
	return fmt.Sprintf("Split(%d)", int(s))
}

// ParseSplit is the inverse of Split.String: it accepts "train" or "test"
// (case-insensitive).
func ParseSplit(s string) (Split, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "train":
		return Train, nil
	case "test":
		return Test, nil
	}
	return 0, fmt.Errorf("%w: split %q, want \"train\" or \"test\"", ErrArgument, s)
}

// valid returns an error for a Split other than Train and Test.
func (s Split) valid() error {
	if s != Train && s != Test {
		return fmt.Errorf("%w: split %d, want Train (0) or Test (1)", ErrArgument, int(s))
	}
	return nil
}
