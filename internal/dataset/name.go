package dataset

import "fmt"

// MaxNameLen bounds the name of a dataset pushed to a cluster (`maas data
// push NAME`), which is also the prefix of its objects in the data bucket.
const MaxNameLen = 100

// ValidName reports whether name can name a dataset: 1 to MaxNameLen
// letters, digits, '-', '_' and '.', not starting with '.'.
func ValidName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: empty; name it with letters, digits, '-', '_' and '.', e.g. mnist-full", ErrName)
	case len(name) > MaxNameLen:
		return fmt.Errorf("%w: %q is %d bytes long; at most %d", ErrName, name, len(name), MaxNameLen)
	case name[0] == '.':
		return fmt.Errorf("%w: %q starts with '.'", ErrName, name)
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return fmt.Errorf("%w: %q holds %q; use only letters, digits, '-', '_' and '.'", ErrName, name, r)
		}
	}
	return nil
}
