package cuda

import (
	"fmt"
	"strconv"
	"strings"
)

// ParseDevice returns the GPU ordinal of a device name: "cuda" is 0,
// "cuda:N" is N. Whether GPU N exists is checked by Open.
func ParseDevice(name string) (int, error) {
	if name == "cuda" {
		return 0, nil
	}
	rest, ok := strings.CutPrefix(name, "cuda:")
	if !ok {
		return 0, fmt.Errorf("%w %q: want cuda or cuda:N for NVIDIA GPU N (from 0), or cpu", ErrBadDevice, name)
	}
	n, err := strconv.Atoi(rest)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%w %q: the N in cuda:N must be a GPU number from 0", ErrBadDevice, name)
	}
	return n, nil
}

// checkOrdinal reports a GPU number the machine does not have, naming how
// many it has.
func checkOrdinal(ordinal, count int) error {
	switch {
	case count == 0:
		return fmt.Errorf("%w: the NVIDIA driver loaded but sees no GPU (check nvidia-smi and CUDA_VISIBLE_DEVICES)", ErrNoDevice)
	case ordinal >= count:
		return fmt.Errorf("%w: cuda:%d asked for, but this machine has %d GPU(s): use cuda:0 to cuda:%d", ErrNoDevice, ordinal, count, count-1)
	}
	return nil
}
