package serve

import (
	"errors"
	"fmt"
	"strconv"
)

// maxNesting bounds how deep tensor data may nest (a shape has at most 4
// dimensions here; a little slack gives a clearer error).
const maxNesting = 8

// parseFloats reads JSON tensor data: a flat array of numbers, or arrays
// nested to any depth up to maxNesting with every array at one depth of the
// same length. It appends the numbers in row-major order to dst (at most
// limit of them) and returns dst and the nesting's dimensions, e.g. [784]
// for a flat array or [2, 1, 28, 28].
func parseFloats(data []byte, dst []float32, limit int) ([]float32, []int, error) {
	out, dims, end, err := parseFloatsAt(data, 0, dst, limit)
	if err != nil {
		return out, nil, err
	}
	for end < len(data) && isSpace(data[end]) {
		end++
	}
	if end != len(data) {
		return out, nil, fmt.Errorf("unexpected %q after the data", data[end])
	}
	return out, dims, nil
}

// parseFloatsAt is parseFloats on the array that starts at b[start] (after
// spaces); it also returns the index just past the array.
func parseFloatsAt(b []byte, start int, dst []float32, limit int) ([]float32, []int, int, error) {
	p := dataParser{b: b, i: start, out: dst, limit: limit, leaf: -1}
	for i := range p.dims {
		p.dims[i] = -1
	}
	p.skipSpace()
	if p.i >= len(p.b) || p.b[p.i] != '[' {
		return dst, nil, p.i, errors.New("data must be an array of numbers")
	}
	if err := p.value(0); err != nil {
		return p.out, nil, p.i, err
	}
	depth := p.leaf
	if depth < 0 { // only empty arrays
		depth = 0
		for depth < len(p.dims) && p.dims[depth] >= 0 {
			depth++
		}
	}
	return p.out, append([]int(nil), p.dims[:depth]...), p.i, nil
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// dataParser is a recursive-descent reader of nested number arrays.
type dataParser struct {
	b     []byte
	i     int
	out   []float32
	limit int
	dims  [maxNesting]int // the length of the arrays at each depth, -1 before the first
	leaf  int             // the depth of the numbers, -1 before the first
}

func (p *dataParser) skipSpace() {
	for p.i < len(p.b) && isSpace(p.b[p.i]) {
		p.i++
	}
}

// value reads an array or a number at depth.
func (p *dataParser) value(depth int) error {
	p.skipSpace()
	if p.i >= len(p.b) {
		return errors.New("data ends early")
	}
	if p.b[p.i] != '[' {
		return p.number(depth)
	}
	if depth >= maxNesting {
		return fmt.Errorf("data nested deeper than %d arrays", maxNesting)
	}
	p.i++
	count := 0
	p.skipSpace()
	if p.i < len(p.b) && p.b[p.i] == ']' {
		p.i++
		return p.endArray(depth, 0)
	}
	for {
		if err := p.value(depth + 1); err != nil {
			return err
		}
		count++
		p.skipSpace()
		if p.i >= len(p.b) {
			return errors.New("data ends early")
		}
		c := p.b[p.i]
		p.i++
		switch c {
		case ',':
		case ']':
			return p.endArray(depth, count)
		default:
			return fmt.Errorf("unexpected %q in the data", c)
		}
	}
}

// endArray checks that an array at depth has the length of the others
// there, and that numbers sit only below the deepest arrays.
func (p *dataParser) endArray(depth, count int) error {
	if p.leaf >= 0 && depth >= p.leaf {
		return errors.New("ragged data: numbers and arrays at one depth")
	}
	if p.dims[depth] < 0 {
		p.dims[depth] = count
		return nil
	}
	if p.dims[depth] != count {
		return fmt.Errorf("ragged data: an array of %d values at depth %d where the first had %d", count, depth+1, p.dims[depth])
	}
	return nil
}

// number reads one number at depth.
func (p *dataParser) number(depth int) error {
	if p.leaf < 0 {
		p.leaf = depth
		if depth < len(p.dims) && p.dims[depth] >= 0 {
			return errors.New("ragged data: numbers and arrays at one depth")
		}
	} else if depth != p.leaf {
		return errors.New("ragged data: numbers at different depths")
	}
	start := p.i
	for p.i < len(p.b) {
		c := p.b[p.i]
		if c >= '0' && c <= '9' || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E' {
			p.i++
			continue
		}
		break
	}
	tok := p.b[start:p.i]
	if len(tok) == 0 {
		end := min(start+8, len(p.b))
		return fmt.Errorf("data holds %q where a number was expected", p.b[start:end])
	}
	if len(p.out) >= p.limit {
		return fmt.Errorf("data holds more than the %d values expected", p.limit)
	}
	f, err := parseFloat32(tok)
	if err != nil {
		if errors.Is(err, strconv.ErrRange) {
			return fmt.Errorf("value %s is out of the FP32 range", tok)
		}
		return fmt.Errorf("value %q is not a number", tok)
	}
	p.out = append(p.out, f)
	return nil
}
