package dataset

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestTextWindowsAndVocabulary(t *testing.T) {
	tr, val, err := NewText("t", []byte("hello, wörld! hello again."), 4, 0.25)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(tr.Vocab); got != " !,.adeghilnorwö" {
		t.Fatalf("vocabulary %q, want the sorted distinct characters", got)
	}
	if len(tr.Tokens)+len(val.Tokens) != 26 || len(val.Tokens) != 6 {
		t.Fatalf("split %d + %d tokens, want 20 + 6", len(tr.Tokens), len(val.Tokens))
	}
	if tr.Decode(tr.Tokens) != "hello, wörld! hello " || val.Decode(val.Tokens) != "again." {
		t.Fatalf("decoded splits %q | %q", tr.Decode(tr.Tokens), val.Decode(val.Tokens))
	}
	if tr.Len() != 4 || val.Len() != 1 { // (20−1)/4 and (6−1)/4 windows
		t.Fatalf("samples %d and %d, want 4 and 1", tr.Len(), val.Len())
	}
	x, y := make([]float32, 8), make([]int32, 8)
	if err := tr.Batch([]int{1, 3}, x, y); err != nil {
		t.Fatal(err)
	}
	in := make([]int32, 8)
	for i, v := range x {
		in[i] = int32(v)
	}
	// Sample 1 is "o, wö" (inputs "o, w", targets ", wö"); sample 3 is "! hel".
	if got := tr.Decode(in); got != "o, w! he" {
		t.Fatalf("inputs %q", got)
	}
	if got := tr.Decode(y); got != ", wö hel" {
		t.Fatalf("targets %q", got)
	}
	if err := tr.Batch([]int{4}, x, y); !errors.Is(err, ErrIndex) {
		t.Fatalf("sample out of range: %v", err)
	}
	if err := tr.Batch([]int{0, 1, 2}, x, y); !errors.Is(err, ErrShortBuffer) {
		t.Fatalf("short buffers: %v", err)
	}
	if allocs := testing.AllocsPerRun(10, func() { tr.Batch([]int{0, 1}, x, y) }); allocs != 0 {
		t.Fatalf("Batch allocates %.0f times", allocs)
	}
	ids, err := tr.Encode("hello")
	if err != nil || tr.Decode(ids) != "hello" {
		t.Fatalf("encode/decode: %v %v", ids, err)
	}
	if _, err := tr.Encode("hellz"); err == nil {
		t.Fatal("encoded a character outside the vocabulary")
	}
}

func TestTextErrors(t *testing.T) {
	cases := map[string]func() error{
		"empty":          func() error { _, _, err := NewText("t", nil, 4, 0.1); return err },
		"not UTF-8":      func() error { _, _, err := NewText("t", []byte("ab\xffcd"), 1, 0); return err },
		"too short":      func() error { _, _, err := NewText("t", []byte("abc"), 4, 0); return err },
		"no held-out":    func() error { _, _, err := NewText("t", []byte("abcdefghij"), 4, 0.1); return err },
		"bad seq len":    func() error { _, _, err := NewText("t", []byte("abc"), 0, 0); return err },
		"bad fraction":   func() error { _, _, err := NewText("t", []byte("abc"), 1, 1); return err },
		"missing file":   func() error { _, _, err := ReadText(filepath.Join(t.TempDir(), "none.txt"), 4, 0.1); return err },
		"directory path": func() error { _, _, err := ReadText(t.TempDir(), 4, 0.1); return err },
	}
	for name, f := range cases {
		if err := f(); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	_, _, err := NewText("t", []byte("ab\xffcd"), 1, 0)
	if !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), "offset 2") {
		t.Fatalf("invalid UTF-8 error %q should name offset 2", err)
	}
	p := filepath.Join(t.TempDir(), "c.txt")
	os.WriteFile(p, []byte("the quick brown fox jumps over the lazy dog"), 0o644)
	tr, val, err := ReadText(p, 5, 0.3)
	if err != nil || tr.Len() == 0 || val.Len() == 0 {
		t.Fatalf("ReadText: %v", err)
	}
}

func FuzzNewText(f *testing.F) {
	f.Add([]byte("hello world"), 3, 0.2)
	f.Add([]byte("\xff\xfe"), 1, 0.0)
	f.Add([]byte("ö"), 1, 0.5)
	f.Fuzz(func(t *testing.T, data []byte, seqLen int, frac float64) {
		if seqLen > 1000 || len(data) > 1<<16 {
			return
		}
		tr, val, err := NewText("f", data, seqLen, frac)
		if err != nil {
			return
		}
		for _, d := range []*Text{tr, val} {
			x, y := make([]float32, d.SeqLen), make([]int32, d.SeqLen)
			for i := 0; i < d.Len(); i++ {
				if err := d.Batch([]int{i}, x, y); err != nil {
					t.Fatal(err)
				}
			}
		}
	})
}
