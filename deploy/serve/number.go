package serve

import (
	"errors"
	"math"
	"strconv"
)

var errNumber = errors.New("not a JSON number")

// pow10 holds the powers of ten that float64 represents exactly.
var pow10 = [...]float64{1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
	1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22}

// parseFloat32 converts a JSON number to the nearest float32, as
// strconv.ParseFloat(s, 32) does (including its range error), but without
// it for the common short numbers:
//
// Clinger's fast path: a decimal m·10^e with m < 2^53 and |e| ≤ 22 is one
// correctly rounded float64 operation away, d = m·10^e or m/10^−e. Rounding
// d to float32 then gives the float32 nearest the decimal, unless d is
// exactly halfway between two float32s (a midpoint strictly between the
// decimal and d would be a float64 nearer the decimal than d); that case,
// and every other, goes to strconv.
func parseFloat32(tok []byte) (float32, error) {
	i, neg := 0, false
	if i < len(tok) && tok[i] == '-' {
		neg, i = true, 1
	}
	var m uint64
	digits, exp := 0, 0 // significant digits in m; the decimal is m·10^exp
	digit := func() {
		d := uint64(tok[i] - '0')
		if m != 0 || d != 0 {
			digits++
		}
		if digits <= 19 {
			m = m*10 + d
		} else {
			exp++ // a dropped digit; strconv decides such numbers anyway
		}
		i++
	}
	switch {
	case i < len(tok) && tok[i] == '0':
		i++
	case i < len(tok) && tok[i] >= '1' && tok[i] <= '9':
		for i < len(tok) && tok[i] >= '0' && tok[i] <= '9' {
			digit()
		}
	default:
		return 0, errNumber
	}
	if i < len(tok) && tok[i] == '.' {
		i++
		start := i
		for i < len(tok) && tok[i] >= '0' && tok[i] <= '9' {
			digit()
			exp--
		}
		if i == start {
			return 0, errNumber
		}
	}
	if i < len(tok) && (tok[i] == 'e' || tok[i] == 'E') {
		i++
		eneg := false
		if i < len(tok) && (tok[i] == '+' || tok[i] == '-') {
			eneg = tok[i] == '-'
			i++
		}
		start, e := i, 0
		for i < len(tok) && tok[i] >= '0' && tok[i] <= '9' {
			if e < 10000 {
				e = e*10 + int(tok[i]-'0')
			}
			i++
		}
		if i == start {
			return 0, errNumber
		}
		if eneg {
			e = -e
		}
		exp += e
	}
	if i != len(tok) {
		return 0, errNumber
	}
	if m == 0 {
		if neg {
			return float32(math.Copysign(0, -1)), nil
		}
		return 0, nil
	}
	if digits <= 19 && m < 1<<53 && exp >= -22 && exp <= 22 {
		d := float64(m)
		if exp < 0 {
			d /= pow10[-exp]
		} else {
			d *= pow10[exp]
		}
		const midpoint = 1 << 28 // float64 bits below float32 precision, halfway
		if d >= math.SmallestNonzeroFloat32*(1<<23) && d <= math.MaxFloat32 && math.Float64bits(d)&(1<<29-1) != midpoint {
			if neg {
				d = -d
			}
			return float32(d), nil
		}
	}
	f, err := strconv.ParseFloat(string(tok), 32)
	return float32(f), err
}
