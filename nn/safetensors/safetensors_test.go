package safetensors

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// rawFile builds a file from a header string and a buffer.
func rawFile(header string, buf []byte) []byte {
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	b = append(b, header...)
	return append(b, buf...)
}

// withLen builds a file whose length prefix is n, followed by rest.
func withLen(n uint64, rest string) []byte {
	return append(binary.LittleEndian.AppendUint64(nil, n), rest...)
}

func sampleFile() *File {
	i64 := make([]byte, 16)
	binary.LittleEndian.PutUint64(i64, 3)
	binary.LittleEndian.PutUint64(i64[8:], uint64(math.MaxUint64)) // -1
	f64 := binary.LittleEndian.AppendUint64(nil, math.Float64bits(math.Pi))
	return &File{
		Metadata: map[string]string{"format": "pt", "note": `quotes " and <html> & ünïcode`},
		Tensors: map[string]Tensor{
			"weight":  F32([]int{2, 3}, []float32{1, 2, 3, -4, 5.5, float32(math.Inf(1))}),
			"labels":  {DType: DTypeI64, Shape: []int{2}, Data: i64},
			"scalar":  {DType: DTypeF64, Shape: []int{}, Data: f64},
			"empty":   F32([]int{0, 4}, nil),
			"bytes":   {DType: DTypeU8, Shape: []int{3}, Data: []byte{1, 2, 255}},
			"half":    {DType: DTypeBF16, Shape: []int{1, 1}, Data: []byte{0x80, 0x3f}},
			"a/b.c:d": {DType: DTypeBOOL, Shape: []int{1}, Data: []byte{1}},
		},
	}
}

func encode(t *testing.T, f *File) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := Encode(&buf, f); err != nil {
		t.Fatalf("Encode: %v", err)
	}
	return buf.Bytes()
}

func sameFile(t *testing.T, got, want *File) {
	t.Helper()
	if !reflect.DeepEqual(got.Names(), want.Names()) {
		t.Fatalf("names %v, want %v", got.Names(), want.Names())
	}
	if len(got.Metadata) != len(want.Metadata) || (len(want.Metadata) > 0 && !reflect.DeepEqual(got.Metadata, want.Metadata)) {
		t.Fatalf("metadata %v, want %v", got.Metadata, want.Metadata)
	}
	for name, w := range want.Tensors {
		g := got.Tensors[name]
		if g.DType != w.DType || len(g.Shape) != len(w.Shape) || (len(w.Shape) > 0 && !reflect.DeepEqual(g.Shape, w.Shape)) || !bytes.Equal(g.Data, w.Data) {
			t.Fatalf("tensor %q = %+v, want %+v", name, g, w)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	want := sampleFile()
	b := encode(t, want)
	n := binary.LittleEndian.Uint64(b)
	if n%8 != 0 || !strings.HasSuffix(strings.TrimRight(string(b[8:8+n]), " "), "}") {
		t.Fatalf("header length %d not padded to 8, or bad padding: %q", n, b[8:8+n])
	}

	got, err := Decode(b)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	sameFile(t, got, want)
	if !bytes.Equal(encode(t, got), b) {
		t.Fatal("re-encoding a decoded file changed its bytes")
	}
	// Decode copies: mutating the input must not change the tensors.
	for i := range b {
		b[i] = 0
	}
	sameFile(t, got, want)

	b = encode(t, want)
	got, err = Read(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	sameFile(t, got, want)

	path := filepath.Join(t.TempDir(), "x.safetensors")
	if err := WriteFile(path, want); err != nil {
		t.Fatalf("WriteFile: %v", err)
	}
	got, err = ReadFile(path)
	if err != nil {
		t.Fatalf("ReadFile: %v", err)
	}
	sameFile(t, got, want)
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o644 {
		t.Fatalf("stat %v, %v; want mode 0644", st, err)
	}

	// Tensors slices are capacity-limited: appending must not clobber a
	// neighbour.
	w := got.Tensors["bytes"]
	_ = append(w.Data, 9, 9, 9, 9, 9)
	sameFile(t, got, want)
}

func TestEmptyFile(t *testing.T) {
	b := encode(t, &File{})
	if want := rawFile("{}      ", nil); !bytes.Equal(b, want) {
		t.Fatalf("empty file = %q, want %q", b, want)
	}
	f, err := Decode(b)
	if err != nil || len(f.Tensors) != 0 || f.Metadata != nil {
		t.Fatalf("Decode(empty) = %+v, %v", f, err)
	}
}

// TestEncodeExact pins the byte layout: length prefix, metadata first,
// tensors sorted by name with contiguous offsets, space padding to 8.
func TestEncodeExact(t *testing.T) {
	f := &File{
		Metadata: map[string]string{"k": "v"},
		Tensors: map[string]Tensor{
			"b": F32([]int{2}, []float32{1, -2}),
			"a": {DType: DTypeI64, Shape: []int{1}, Data: []byte{7, 0, 0, 0, 0, 0, 0, 0}},
		},
	}
	want := []byte{136, 0, 0, 0, 0, 0, 0, 0} // 133 bytes of JSON + 3 spaces
	want = append(want, `{"__metadata__":{"k":"v"},`+
		`"a":{"dtype":"I64","shape":[1],"data_offsets":[0,8]},`+
		`"b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}   `...)
	want = append(want,
		7, 0, 0, 0, 0, 0, 0, 0, // a: int64 7
		0x00, 0x00, 0x80, 0x3f, // b[0]: float32 1
		0x00, 0x00, 0x00, 0xc0, // b[1]: float32 -2
	)
	if got := encode(t, f); !bytes.Equal(got, want) {
		t.Fatalf("Encode =\n%q\nwant\n%q", got, want)
	}
	got, err := Decode(want)
	if err != nil {
		t.Fatal(err)
	}
	sameFile(t, got, f)
}

type badCase struct {
	name string
	file []byte
	want error
}

const okEntry = `{"dtype":"F32","shape":[2],"data_offsets":[0,8]}`

func malformedCases() []badCase {
	buf8 := make([]byte, 8)
	return []badCase{
		{"empty", nil, ErrTruncated},
		{"7 bytes", []byte{1, 2, 3, 4, 5, 6, 7}, ErrTruncated},
		{"header longer than file", withLen(100, `{}`), ErrTruncated},
		{"header length max uint64", withLen(math.MaxUint64, `{}`), ErrHeaderTooLarge},
		{"header over 100MB", withLen(MaxHeaderSize+1, `{}`), ErrHeaderTooLarge},
		{"empty header", rawFile(``, nil), ErrHeader},
		{"bad json", rawFile(`{"a":`, nil), ErrHeader},
		{"missing comma", rawFile(`{"a":`+okEntry+` "b":`+okEntry+`}`, buf8), ErrHeader},
		{"array header", rawFile(`[1,2]`, nil), ErrHeader},
		{"string header", rawFile(`"x"`, nil), ErrHeader},
		{"null header", rawFile(`null`, nil), ErrHeader},
		{"trailing data", rawFile(`{} {}`, nil), ErrHeader},
		{"trailing garbage", rawFile(`{}x`, nil), ErrHeader},
		{"invalid utf8", rawFile("{\"\xff\":"+okEntry+"}", buf8), ErrHeader},
		{"entry not object", rawFile(`{"a":[1]}`, nil), ErrHeader},
		{"missing dtype", rawFile(`{"a":{"shape":[2],"data_offsets":[0,8]}}`, buf8), ErrHeader},
		{"missing shape", rawFile(`{"a":{"dtype":"F32","data_offsets":[0,8]}}`, buf8), ErrHeader},
		{"null shape", rawFile(`{"a":{"dtype":"F32","shape":null,"data_offsets":[0,8]}}`, buf8), ErrHeader},
		{"missing offsets", rawFile(`{"a":{"dtype":"F32","shape":[2]}}`, buf8), ErrHeader},
		{"fractional dim", rawFile(`{"a":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}}`, buf8), ErrHeader},
		{"huge dim", rawFile(`{"a":{"dtype":"F32","shape":[1e30],"data_offsets":[0,8]}}`, buf8), ErrHeader},
		{"dtype not string", rawFile(`{"a":{"dtype":3,"shape":[2],"data_offsets":[0,8]}}`, buf8), ErrHeader},
		{"duplicate field", rawFile(`{"a":{"dtype":"F32","dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, buf8), ErrHeader},
		{"metadata not object", rawFile(`{"__metadata__":[]}`, nil), ErrHeader},
		{"metadata value number", rawFile(`{"__metadata__":{"a":1}}`, nil), ErrHeader},
		{"metadata value object", rawFile(`{"__metadata__":{"a":{}}}`, nil), ErrHeader},
		{"unknown dtype", rawFile(`{"a":{"dtype":"F8","shape":[2],"data_offsets":[0,8]}}`, buf8), ErrDType},
		{"lowercase dtype", rawFile(`{"a":{"dtype":"f32","shape":[2],"data_offsets":[0,8]}}`, buf8), ErrDType},
		{"negative dim", rawFile(`{"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}`, buf8), ErrShape},
		{"negative dims product positive", rawFile(`{"a":{"dtype":"F32","shape":[-1,-2],"data_offsets":[0,8]}}`, buf8), ErrShape},
		{"shape size mismatch", rawFile(`{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}`, buf8), ErrShape},
		{"dtype size mismatch", rawFile(`{"a":{"dtype":"F64","shape":[2],"data_offsets":[0,8]}}`, buf8), ErrShape},
		{"shape overflow", rawFile(`{"a":{"dtype":"F32","shape":[4611686018427387904,4611686018427387904],"data_offsets":[0,8]}}`, buf8), ErrShape},
		{"shape bytes overflow", rawFile(`{"a":{"dtype":"F64","shape":[4611686018427387904],"data_offsets":[0,8]}}`, buf8), ErrShape},
		{"offsets out of buffer", rawFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, buf8[:4]), ErrOffsets},
		{"offsets far out of buffer", rawFile(`{"a":{"dtype":"U8","shape":[8],"data_offsets":[9223372036854775799,9223372036854775807]}}`, buf8), ErrOffsets},
		{"begin after end", rawFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}}`, buf8), ErrOffsets},
		{"negative offset", rawFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[-8,0]}}`, buf8), ErrOffsets},
		{"three offsets", rawFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8,8]}}`, buf8), ErrOffsets},
		{"overlap", rawFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}`, make([]byte, 12)), ErrOffsets},
		{"same range", rawFile(`{"a":`+okEntry+`,"b":`+okEntry+`}`, buf8), ErrOffsets},
		{"gap", rawFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}`, make([]byte, 12)), ErrCoverage},
		{"not starting at 0", rawFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, buf8), ErrCoverage},
		{"trailing bytes", rawFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, buf8), ErrCoverage},
		{"no tensors but buffer", rawFile(`{}`, buf8), ErrCoverage},
		{"duplicate name", rawFile(`{"a":`+okEntry+`,"a":`+okEntry+`}`, buf8), ErrDuplicate},
		{"duplicate metadata", rawFile(`{"__metadata__":{},"__metadata__":{}}`, nil), ErrDuplicate},
		{"duplicate metadata key", rawFile(`{"__metadata__":{"k":"1","k":"2"}}`, nil), ErrDuplicate},
	}
}

func TestMalformed(t *testing.T) {
	for _, tc := range malformedCases() {
		t.Run(tc.name, func(t *testing.T) {
			f, err := Decode(tc.file)
			if err == nil {
				t.Fatalf("Decode = %+v, want error %v", f, tc.want)
			}
			if !errors.Is(err, tc.want) || !errors.Is(err, ErrFormat) {
				t.Fatalf("Decode error %q is not %q and ErrFormat", err, tc.want)
			}
			_, err = Read(bytes.NewReader(tc.file))
			if !errors.Is(err, tc.want) || !errors.Is(err, ErrFormat) {
				t.Fatalf("Read error %v is not %q and ErrFormat", err, tc.want)
			}
		})
	}
}

func TestValidEdgeCases(t *testing.T) {
	for name, file := range map[string][]byte{
		"padded header":        rawFile(`{"a":`+okEntry+`}        `, make([]byte, 8)),
		"leading whitespace":   rawFile(" \n\t{}", nil),
		"null metadata":        rawFile(`{"__metadata__":null}`, nil),
		"unknown entry field":  rawFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"x":[{}]}}`, make([]byte, 8)),
		"zero-size tensors":    rawFile(`{"a":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},"b":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"c":{"dtype":"I8","shape":[2,0],"data_offsets":[1,1]}}`, []byte{1}),
		"zero dim beats huge":  rawFile(`{"a":{"dtype":"F64","shape":[9223372036854775807,0,9223372036854775807],"data_offsets":[0,0]}}`, nil),
		"scalar":               rawFile(`{"s":{"dtype":"I32","shape":[],"data_offsets":[0,4]}}`, []byte{1, 0, 0, 0}),
		"out of order offsets": rawFile(`{"b":{"dtype":"U8","shape":[1],"data_offsets":[1,2]},"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}`, []byte{1, 2}),
	} {
		if _, err := Decode(file); err != nil {
			t.Errorf("%s: Decode: %v", name, err)
		}
		if _, err := Read(bytes.NewReader(file)); err != nil {
			t.Errorf("%s: Read: %v", name, err)
		}
	}
}

func TestEncodeErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		f    *File
		want error
	}{
		{"short data", &File{Tensors: map[string]Tensor{"a": F32([]int{2, 2}, []float32{1, 2, 3})}}, ErrShape},
		{"long data", &File{Tensors: map[string]Tensor{"a": {DType: DTypeI32, Shape: []int{1}, Data: make([]byte, 8)}}}, ErrShape},
		{"negative dim", &File{Tensors: map[string]Tensor{"a": {DType: DTypeU8, Shape: []int{-1, -1}, Data: []byte{1}}}}, ErrShape},
		{"overflow", &File{Tensors: map[string]Tensor{"a": {DType: DTypeF64, Shape: []int{math.MaxInt / 4}}}}, ErrShape},
		{"unknown dtype", &File{Tensors: map[string]Tensor{"a": {DType: "Q4", Shape: []int{1}, Data: []byte{1}}}}, ErrDType},
		{"empty dtype", &File{Tensors: map[string]Tensor{"a": {}}}, ErrDType},
		{"reserved name", &File{Tensors: map[string]Tensor{metadataKey: F32(nil, []float32{1})}}, ErrHeader},
		{"invalid utf8 name", &File{Tensors: map[string]Tensor{"\xff": F32(nil, []float32{1})}}, ErrHeader},
		{"invalid utf8 metadata", &File{Metadata: map[string]string{"k": "\xfe"}}, ErrHeader},
	} {
		var buf bytes.Buffer
		err := Encode(&buf, tc.f)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: Encode error %v, want %v", tc.name, err, tc.want)
		}
		if buf.Len() != 0 {
			t.Errorf("%s: Encode wrote %d bytes before failing", tc.name, buf.Len())
		}
	}
	if err := Encode(new(bytes.Buffer), nil); err == nil {
		t.Error("Encode(nil) succeeded")
	}
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "model.safetensors")
	bad := &File{Tensors: map[string]Tensor{"w": {DType: DTypeF32, Shape: []int{4}, Data: make([]byte, 3)}}}

	err := WriteFile(path, bad)
	if !errors.Is(err, ErrShape) || !strings.Contains(err.Error(), path) {
		t.Fatalf("WriteFile(bad) = %v, want ErrShape naming %s", err, path)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("target exists after failed WriteFile: %v", err)
	}
	if names := dirNames(t, dir); len(names) != 0 {
		t.Fatalf("files left behind: %v", names)
	}

	good := sampleFile()
	if err := WriteFile(path, good); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(path, bad); err == nil {
		t.Fatal("WriteFile(bad) over an existing file succeeded")
	}
	after, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(before, after) {
		t.Fatalf("existing file changed by failed WriteFile (err %v)", err)
	}
	if names := dirNames(t, dir); !reflect.DeepEqual(names, []string{"model.safetensors"}) {
		t.Fatalf("dir holds %v, want only the target", names)
	}

	// Overwriting keeps the permission bits and replaces the content.
	small := &File{Tensors: map[string]Tensor{"x": F32([]int{1}, []float32{42})}}
	if err := WriteFile(path, small); err != nil {
		t.Fatal(err)
	}
	got, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sameFile(t, got, small)
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v after overwrite, want 0600", st.Mode().Perm())
	}

	// A missing directory or a directory as target fails cleanly.
	if err := WriteFile(filepath.Join(dir, "nope", "x.safetensors"), small); err == nil {
		t.Fatal("WriteFile into a missing directory succeeded")
	}
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(sub, "keep"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(sub, small); err == nil {
		t.Fatal("WriteFile over a non-empty directory succeeded")
	}
	if names := dirNames(t, dir); !reflect.DeepEqual(names, []string{"model.safetensors", "sub"}) {
		t.Fatalf("dir holds %v after failed writes", names)
	}
}

func TestReadFileErrorsNamePath(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.safetensors")
	if _, err := ReadFile(missing); err == nil || !strings.Contains(err.Error(), missing) || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("ReadFile(missing) = %v", err)
	}
	bad := filepath.Join(dir, "bad.safetensors")
	if err := os.WriteFile(bad, rawFile(`{"a":1}`, nil), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadFile(bad); err == nil || !strings.Contains(err.Error(), bad) || !errors.Is(err, ErrHeader) {
		t.Fatalf("ReadFile(bad) = %v", err)
	}
}

// errReader fails after its data.
type errReader struct {
	data []byte
	err  error
}

func (r *errReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, r.err
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

func TestReadIOError(t *testing.T) {
	boom := errors.New("boom")
	b := encode(t, sampleFile())
	for _, cut := range []int{3, 8, 20, len(b) - 1} {
		_, err := Read(&errReader{data: b[:cut], err: boom})
		if !errors.Is(err, boom) {
			t.Errorf("cut %d: Read error %v, want boom", cut, err)
		}
	}
	// A short stream (clean EOF) is a format error.
	for _, cut := range []int{0, 5, 8, 20, len(b) - 1} {
		_, err := Read(bytes.NewReader(b[:cut]))
		if !errors.Is(err, ErrFormat) {
			t.Errorf("cut %d: Read error %v, want ErrFormat", cut, err)
		}
	}
}

func TestConversions(t *testing.T) {
	le := binary.LittleEndian
	want := []float32{1.5, -2, 0}
	if got, err := F32([]int{3}, want).Float32(); err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("F32.Float32 = %v, %v", got, err)
	}
	var f64, i64, i32 []byte
	for _, v := range []float64{1.5, -2, 0} {
		f64 = le.AppendUint64(f64, math.Float64bits(v))
	}
	for _, v := range []int64{7, -3, 1 << 40} {
		i64 = le.AppendUint64(i64, uint64(v))
	}
	for _, v := range []int32{7, -3, math.MaxInt32} {
		i32 = le.AppendUint32(i32, uint32(v))
	}
	if got, err := (Tensor{DType: DTypeF64, Shape: []int{3}, Data: f64}).Float32(); err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("F64.Float32 = %v, %v", got, err)
	}
	if got, err := (Tensor{DType: DTypeI64, Shape: []int{3}, Data: i64}).Float32(); err != nil || !reflect.DeepEqual(got, []float32{7, -3, 1 << 40}) {
		t.Fatalf("I64.Float32 = %v, %v", got, err)
	}
	if got, err := (Tensor{DType: DTypeI32, Shape: []int{3}, Data: i32}).Float32(); err != nil || !reflect.DeepEqual(got, []float32{7, -3, math.MaxInt32}) {
		t.Fatalf("I32.Float32 = %v, %v", got, err)
	}
	if got, err := (Tensor{DType: DTypeI64, Shape: []int{3}, Data: i64}).Int64(); err != nil || !reflect.DeepEqual(got, []int64{7, -3, 1 << 40}) {
		t.Fatalf("I64.Int64 = %v, %v", got, err)
	}
	if got, err := (Tensor{DType: DTypeI32, Shape: []int{1, 3}, Data: i32}).Int64(); err != nil || !reflect.DeepEqual(got, []int64{7, -3, math.MaxInt32}) {
		t.Fatalf("I32.Int64 = %v, %v", got, err)
	}
	if got, err := F32(nil, []float32{4}).Float32(); err != nil || !reflect.DeepEqual(got, []float32{4}) {
		t.Fatalf("scalar Float32 = %v, %v", got, err)
	}

	for _, tc := range []struct {
		t    Tensor
		want error
	}{
		{Tensor{DType: DTypeU8, Shape: []int{1}, Data: []byte{1}}, ErrDType},
		{Tensor{DType: DTypeF16, Shape: []int{1}, Data: []byte{1, 2}}, ErrDType},
		{F32([]int{2}, []float32{1}), ErrShape},
		{F32([]int{-1}, nil), ErrShape},
	} {
		if _, err := tc.t.Float32(); !errors.Is(err, tc.want) {
			t.Errorf("Float32(%v) error %v, want %v", tc.t.DType, err, tc.want)
		}
	}
	if _, err := F32([]int{1}, []float32{1}).Int64(); !errors.Is(err, ErrDType) {
		t.Errorf("F32.Int64 error %v", err)
	}
	if _, err := (Tensor{DType: DTypeI64, Shape: []int{2}, Data: make([]byte, 8)}).Int64(); !errors.Is(err, ErrShape) {
		t.Errorf("short I64.Int64 error %v", err)
	}

	// F32 copies its inputs.
	shape, data := []int{2}, []float32{1, 2}
	tt := F32(shape, data)
	shape[0], data[0] = 9, 9
	if got, _ := tt.Float32(); tt.Shape[0] != 2 || got[0] != 1 {
		t.Fatal("F32 aliases its arguments")
	}
}

func TestNumElementsAndSize(t *testing.T) {
	for _, tc := range []struct {
		shape []int
		want  int
	}{
		{nil, 1}, {[]int{}, 1}, {[]int{3}, 3}, {[]int{2, 3, 4}, 24}, {[]int{5, 0}, 0},
		{[]int{-1}, -1}, {[]int{-1, -1}, -1}, {[]int{math.MaxInt, 2}, -1}, {[]int{math.MaxInt, 0}, 0},
	} {
		if got := (Tensor{Shape: tc.shape}).NumElements(); got != tc.want {
			t.Errorf("NumElements(%v) = %d, want %d", tc.shape, got, tc.want)
		}
	}
	for d, want := range map[DType]int{
		"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1,
		"": 0, "f32": 0, "F8_E4M3": 0, "U64": 0,
	} {
		if got := d.Size(); got != want {
			t.Errorf("%q.Size() = %d, want %d", d, got, want)
		}
	}
	var nilFile *File
	if nilFile.Names() != nil {
		t.Error("nil File has names")
	}
}
