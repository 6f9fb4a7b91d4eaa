package safetensors

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzDecode checks that Decode and Read never panic, agree with each other,
// report only ErrFormat errors for malformed input, and that every file they
// accept re-encodes to a file that decodes to the same content.
func FuzzDecode(f *testing.F) {
	var buf bytes.Buffer
	if err := Encode(&buf, sampleFile()); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	buf.Reset()
	if err := Encode(&buf, &File{}); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Add(rawFile(`{"a":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},"b":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}`, []byte{1}))
	f.Add(rawFile(`{"__metadata__":{"k":"v"},"s":{"dtype":"I32","shape":[],"data_offsets":[0,4]}}  `, []byte{1, 0, 0, 0}))
	for _, tc := range malformedCases() {
		f.Add(tc.file)
	}

	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := Decode(b)
		_, rerr := Read(bytes.NewReader(b))
		if (err == nil) != (rerr == nil) {
			t.Fatalf("Decode error %v but Read error %v", err, rerr)
		}
		if err != nil {
			if !errors.Is(err, ErrFormat) || !errors.Is(rerr, ErrFormat) {
				t.Fatalf("errors %v / %v do not wrap ErrFormat", err, rerr)
			}
			return
		}
		var out bytes.Buffer
		if err := Encode(&out, got); err != nil {
			t.Fatalf("Encode of a decoded file: %v", err)
		}
		again, err := Decode(out.Bytes())
		if err != nil {
			t.Fatalf("Decode of a re-encoded file: %v", err)
		}
		sameFile(t, again, got)
		var out2 bytes.Buffer
		if err := Encode(&out2, again); err != nil || !bytes.Equal(out.Bytes(), out2.Bytes()) {
			t.Fatalf("encoding is not deterministic (err %v)", err)
		}
	})
}
