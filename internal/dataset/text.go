package dataset

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"unicode/utf8"
)

// maxTextBytes bounds a text corpus read into memory.
const maxTextBytes = 1 << 30

// Text is a character-level corpus: a UTF-8 text read as a stream of rune
// tokens over a vocabulary built from the whole text, cut into samples of
// SeqLen inputs with their next-token targets. Sample i is the window
// Tokens[i·SeqLen : i·SeqLen+SeqLen+1): inputs are its first SeqLen tokens,
// targets its last SeqLen (each input's next token).
type Text struct {
	Name   string
	Vocab  []rune // sorted; token id = index
	Tokens []int32
	SeqLen int
	index  map[rune]int32
}

// NewText builds the training split and the held-out tail (the last
// valFraction of the tokens) of a text. Both share the vocabulary of the
// whole text.
func NewText(name string, data []byte, seqLen int, valFraction float64) (train, val *Text, err error) {
	if seqLen < 1 {
		return nil, nil, fmt.Errorf("%w: sequence length %d must be positive", ErrArgument, seqLen)
	}
	if !(valFraction >= 0 && valFraction < 1) {
		return nil, nil, fmt.Errorf("%w: validation fraction %g must be in [0, 1)", ErrArgument, valFraction)
	}
	if len(data) == 0 {
		return nil, nil, fmt.Errorf("%w: %s is empty", ErrFormat, name)
	}
	if !utf8.Valid(data) {
		at := 0
		for at < len(data) {
			r, size := utf8.DecodeRune(data[at:])
			if r == utf8.RuneError && size <= 1 {
				break
			}
			at += size
		}
		return nil, nil, fmt.Errorf("%w: %s is not UTF-8 text (invalid byte at offset %d)", ErrFormat, name, at)
	}
	text := string(data)
	seen := map[rune]bool{}
	for _, r := range text {
		seen[r] = true
	}
	vocab := make([]rune, 0, len(seen))
	for r := range seen {
		vocab = append(vocab, r)
	}
	slices.Sort(vocab)
	index := make(map[rune]int32, len(vocab))
	for i, r := range vocab {
		index[r] = int32(i)
	}
	tokens := make([]int32, 0, utf8.RuneCount(data))
	for _, r := range text {
		tokens = append(tokens, index[r])
	}
	cut := len(tokens) - int(float64(len(tokens))*valFraction)
	train = &Text{Name: name + "-train", Vocab: vocab, Tokens: tokens[:cut], SeqLen: seqLen, index: index}
	val = &Text{Name: name + "-val", Vocab: vocab, Tokens: tokens[cut:], SeqLen: seqLen, index: index}
	if train.Len() == 0 {
		return nil, nil, fmt.Errorf("%w: %s has %d tokens before its held-out tail, fewer than one sequence of %d+1", ErrFormat, name, cut, seqLen)
	}
	if valFraction > 0 && val.Len() == 0 {
		return nil, nil, fmt.Errorf("%w: the held-out tail of %s (%d tokens) is shorter than one sequence of %d+1; lower the sequence length or raise the validation fraction", ErrFormat, name, len(tokens)-cut, seqLen)
	}
	return train, val, nil
}

// ReadText reads a UTF-8 text file (see NewText).
func ReadText(path string, seqLen int, valFraction float64) (train, val *Text, err error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrNotFound, err)
	}
	if st.IsDir() {
		return nil, nil, fmt.Errorf("%w: %s is a directory; a text dataset is one UTF-8 file", ErrArgument, path)
	}
	if st.Size() > maxTextBytes {
		return nil, nil, fmt.Errorf("%w: %s is %d bytes; the limit is %d", ErrFormat, path, st.Size(), maxTextBytes)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	return NewText(path, data, seqLen, valFraction)
}

// Len is the number of samples: whole windows of SeqLen+1 tokens at
// offsets i·SeqLen.
func (t *Text) Len() int {
	if len(t.Tokens) <= t.SeqLen {
		return 0
	}
	return (len(t.Tokens) - 1) / t.SeqLen
}

// Batch writes the inputs of samples idx into x (len(idx)·SeqLen token ids
// as float32) and their targets into y (len(idx)·SeqLen). It allocates
// nothing.
func (t *Text) Batch(idx []int, x []float32, y []int32) error {
	T, n := t.SeqLen, t.Len()
	if len(x) < len(idx)*T || len(y) < len(idx)*T {
		return fmt.Errorf("%w: %d samples of %d tokens need %d inputs and targets, have %d and %d", ErrShortBuffer, len(idx), T, len(idx)*T, len(x), len(y))
	}
	for _, i := range idx {
		if i < 0 || i >= n {
			return fmt.Errorf("%w: sample %d of %s (0..%d)", ErrIndex, i, t.Name, n-1)
		}
	}
	for k, i := range idx {
		w := t.Tokens[i*T : i*T+T+1]
		for j := 0; j < T; j++ {
			x[k*T+j] = float32(w[j])
			y[k*T+j] = w[j+1]
		}
	}
	return nil
}

// Encode maps text to token ids; a character outside the vocabulary is an
// error naming it.
func (t *Text) Encode(s string) ([]int32, error) {
	if t.index == nil {
		t.index = make(map[rune]int32, len(t.Vocab))
		for i, r := range t.Vocab {
			t.index[r] = int32(i)
		}
	}
	ids := make([]int32, 0, len(s))
	for _, r := range s {
		id, ok := t.index[r]
		if !ok {
			return nil, fmt.Errorf("%w: %q is not in the vocabulary of %s", ErrArgument, r, t.Name)
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// Decode maps token ids back to text; ids outside the vocabulary become
// U+FFFD.
func (t *Text) Decode(ids []int32) string {
	var b strings.Builder
	for _, id := range ids {
		if id >= 0 && int(id) < len(t.Vocab) {
			b.WriteRune(t.Vocab[id])
		} else {
			b.WriteRune(utf8.RuneError)
		}
	}
	return b.String()
}
