package dataset

import "fmt"

// syntheticStream separates Synthetic's random stream from Permutation's
// epochs for the same seed.
const syntheticStream = 0x5359_4e54_4845_5449 // "SYNTHETI"

// maxSyntheticBytes caps the pixel bytes (and class prototype bytes) that
// Synthetic allocates.
const maxSyntheticBytes = 1 << 32

// Synthetic makes a deterministic random dataset of n samples of c*h*w
// bytes with the given number of classes, all derived from seed, for
// benchmarks and tests. Each class has a random prototype image; a sample
// is the average of its class prototype and uniform noise, so the classes
// are learnable. Labels are uniform over 0..classes-1.
//
// Synthetic does not fail: negative sizes are treated as 0, classes is
// clamped to 1..256 (labels are bytes), and a shape needing more than
// 4 GiB of pixels (or of class prototypes) gives a dataset with N = 0. An empty name becomes
// "synthetic-<seed>".
func Synthetic(name string, n, c, h, w, classes int, seed uint64) *Dataset {
	n, c, h, w = max(n, 0), max(c, 0), max(h, 0), max(w, 0)
	classes = min(max(classes, 1), 256)
	if name == "" {
		name = fmt.Sprintf("synthetic-%d", seed)
	}
	d := &Dataset{Name: name, C: c, H: h, W: w, Classes: classes}
	ss, ok := mulInts(c, h, w)
	if !ok {
		return d
	}
	total, ok1 := mulInts(n, ss)
	ptotal, ok2 := mulInts(classes, ss)
	if !ok1 || !ok2 || int64(total) > maxSyntheticBytes || int64(ptotal) > maxSyntheticBytes {
		return d
	}
	d.N = n
	r := newRNG(seed, syntheticStream)
	protos := make([]uint8, classes*ss)
	fill(&r, protos)
	d.Labels = make([]uint8, n)
	d.Pixels = make([]uint8, n*ss)
	for i := range d.Labels {
		k := int(r.bounded(uint64(classes)))
		d.Labels[i] = uint8(k)
		sample := d.Pixels[i*ss : (i+1)*ss]
		fill(&r, sample)
		proto := protos[k*ss : (k+1)*ss]
		for j := range sample {
			sample[j] = uint8((uint16(sample[j]) + uint16(proto[j]) + 1) / 2)
		}
	}
	return d
}

// fill sets b to random bytes from r.
func fill(r *rng, b []uint8) {
	for len(b) >= 8 {
		v := r.next()
		for k := 0; k < 8; k++ {
			b[k] = uint8(v >> (8 * k))
		}
		b = b[8:]
	}
	if len(b) > 0 {
		v := r.next()
		for k := range b {
			b[k] = uint8(v >> (8 * k))
		}
	}
}

// mulInts returns the product of xs, all >= 0, and whether it fits in int.
func mulInts(xs ...int) (int, bool) {
	p := 1
	for _, x := range xs {
		if x != 0 && p > maxInt/x {
			return 0, false
		}
		p *= x
	}
	return p, true
}
