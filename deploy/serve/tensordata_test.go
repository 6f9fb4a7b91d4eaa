package serve

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseFloats(t *testing.T) {
	for _, tc := range []struct {
		in    string
		limit int
		want  []float32
		dims  []int
		err   string
	}{
		{in: `[1, 2.5, -3e2, 0]`, limit: 4, want: []float32{1, 2.5, -300, 0}, dims: []int{4}},
		{in: ` [[1,2],[3,4],[5,6]] `, limit: 6, want: []float32{1, 2, 3, 4, 5, 6}, dims: []int{3, 2}},
		{in: `[[[[0.5]]]]`, limit: 1, want: []float32{0.5}, dims: []int{1, 1, 1, 1}},
		{in: `[]`, limit: 1, want: []float32{}, dims: []int{0}},
		{in: `[[],[]]`, limit: 1, want: []float32{}, dims: []int{2, 0}},
		{in: `[1,2,3]`, limit: 2, err: "more than the 2 values expected"},
		{in: `[[1,2],[3]]`, limit: 9, err: "ragged data: an array of 1 values at depth 2 where the first had 2"},
		{in: `[[1,2],3]`, limit: 9, err: "ragged data"},
		{in: `[1,[2]]`, limit: 9, err: "ragged data"},
		{in: `[[],[1]]`, limit: 9, err: "ragged data"},
		{in: `[[1],[]]`, limit: 9, err: "ragged data"},
		{in: `[null]`, limit: 9, err: "where a number was expected"},
		{in: `["1"]`, limit: 9, err: "where a number was expected"},
		{in: `[1e40]`, limit: 9, err: "out of the FP32 range"},
		{in: `[1-2]`, limit: 9, err: "is not a number"},
		{in: `{"a":1}`, limit: 9, err: "must be an array"},
		{in: `3`, limit: 9, err: "must be an array"},
		{in: `[1 2]`, limit: 9, err: "unexpected '2'"},
		{in: `[1,2`, limit: 9, err: "ends early"},
		{in: `[1] x`, limit: 9, err: "after the data"},
		{in: strings.Repeat("[", 9) + "1" + strings.Repeat("]", 9), limit: 9, err: "nested deeper than 8"},
	} {
		got, dims, err := parseFloats([]byte(tc.in), nil, tc.limit)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		if got == nil {
			got = []float32{}
		}
		if !reflect.DeepEqual(got, tc.want) || !reflect.DeepEqual(dims, tc.dims) {
			t.Errorf("%s = %v %v, want %v %v", tc.in, got, dims, tc.want, tc.dims)
		}
	}
}

// FuzzParseFloats: any input gives an error or numbers whose count is the
// product of the nesting's dimensions, and never more than the limit.
func FuzzParseFloats(f *testing.F) {
	for _, s := range []string{`[1,2]`, `[[1],[2]]`, `[[[]]]`, `[1e5,-0.5]`, `[[1,2],[3]]`, `[`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, dims, err := parseFloats(data, nil, 64)
		if err != nil {
			return
		}
		if len(got) > 64 {
			t.Fatalf("%d values past the limit", len(got))
		}
		n := 1
		for _, d := range dims {
			n *= d
		}
		if n != len(got) {
			t.Fatalf("%q: dims %v but %d values", data, dims, len(got))
		}
	})
}

// BenchmarkParseFloats: one MNIST sample's worth of data.
func BenchmarkParseFloats(b *testing.B) {
	data := []byte(mustJSON(randomInput(1, 1)))
	dst := make([]float32, 0, 784)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := parseFloats(data, dst[:0], 784); err != nil {
			b.Fatal(err)
		}
	}
}
