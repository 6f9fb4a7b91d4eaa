package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"unicode/utf8"
)

// entry is one tensor's header record.
type entry struct {
	name       string
	dtype      DType
	shape      []int
	begin, end int
}

// Decode parses a complete safetensors file held in b. The returned tensors
// do not alias b: their data is copied into one new buffer.
func Decode(b []byte) (*File, error) {
	return decodeBytes(b, true)
}

// decodeBytes parses b; when copyData is false, the tensors alias b.
func decodeBytes(b []byte, copyData bool) (*File, error) {
	if len(b) < 8 {
		return nil, fmt.Errorf("%w: %d bytes, need at least 8 for the header length", ErrTruncated, len(b))
	}
	n, err := headerLen(binary.LittleEndian.Uint64(b[:8]))
	if err != nil {
		return nil, err
	}
	if n > len(b)-8 {
		return nil, fmt.Errorf("%w: header length %d exceeds the %d bytes after the length prefix", ErrTruncated, n, len(b)-8)
	}
	meta, entries, err := parseHeader(b[8 : 8+n])
	if err != nil {
		return nil, err
	}
	buf := b[8+n:]
	if err := checkLayout(entries, len(buf)); err != nil {
		return nil, err
	}
	if copyData {
		buf = bytes.Clone(buf)
	}
	return assemble(meta, entries, buf), nil
}

// Read parses a safetensors file from r, reading r to its end. The file must
// end exactly where the last tensor ends.
func Read(r io.Reader) (*File, error) {
	var prefix [8]byte
	if k, err := io.ReadFull(r, prefix[:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("%w: %d bytes, need at least 8 for the header length", ErrTruncated, k)
		}
		return nil, fmt.Errorf("safetensors: reading header length: %w", err)
	}
	n, err := headerLen(binary.LittleEndian.Uint64(prefix[:]))
	if err != nil {
		return nil, err
	}
	// ReadAll grows its buffer as data arrives, so a lying header length
	// cannot make us allocate more than the stream actually holds.
	header, err := io.ReadAll(io.LimitReader(r, int64(n)))
	if err != nil {
		return nil, fmt.Errorf("safetensors: reading header: %w", err)
	}
	if len(header) < n {
		return nil, fmt.Errorf("%w: header length %d exceeds the %d bytes after the length prefix", ErrTruncated, n, len(header))
	}
	meta, entries, err := parseHeader(header)
	if err != nil {
		return nil, err
	}
	need := 0
	for _, e := range entries {
		need = max(need, e.end)
	}
	// Read one byte more than the tensors need so trailing bytes are
	// detected; start small and let the buffer grow with the data.
	limit := int64(need)
	if limit < math.MaxInt64 {
		limit++
	}
	var bb bytes.Buffer
	bb.Grow(min(need, 1<<20))
	if _, err := bb.ReadFrom(io.LimitReader(r, limit)); err != nil {
		return nil, fmt.Errorf("safetensors: reading data: %w", err)
	}
	buf := bb.Bytes()
	if err := checkLayout(entries, len(buf)); err != nil {
		return nil, err
	}
	return assemble(meta, entries, buf), nil
}

// ReadFile reads and parses the safetensors file at path. Errors name the
// path.
func ReadFile(path string) (*File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err) // *PathError names the path
	}
	f, err := decodeBytes(b, false)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return f, nil
}

// headerLen checks the header length read from the prefix.
func headerLen(n uint64) (int, error) {
	if n > MaxHeaderSize {
		return 0, fmt.Errorf("%w: header length %d exceeds the %d byte limit", ErrHeaderTooLarge, n, MaxHeaderSize)
	}
	return int(n), nil
}

// assemble builds the File once the layout has been checked against buf.
func assemble(meta map[string]string, entries []entry, buf []byte) *File {
	f := &File{Metadata: meta, Tensors: make(map[string]Tensor, len(entries))}
	for _, e := range entries {
		f.Tensors[e.name] = Tensor{DType: e.dtype, Shape: e.shape, Data: buf[e.begin:e.end:e.end]}
	}
	return f
}

// checkLayout verifies that the tensors lie inside a buffer of bufLen bytes
// and tile it exactly: no overlaps, no gaps, no trailing bytes.
func checkLayout(entries []entry, bufLen int) error {
	for _, e := range entries {
		if e.end > bufLen {
			return fmt.Errorf("%w: tensor %q: data_offsets [%d, %d] exceed the %d byte buffer", ErrOffsets, e.name, e.begin, e.end, bufLen)
		}
	}
	sorted := make([]*entry, len(entries))
	for i := range entries {
		sorted[i] = &entries[i]
	}
	sort.Slice(sorted, func(i, j int) bool {
		if sorted[i].begin != sorted[j].begin {
			return sorted[i].begin < sorted[j].begin
		}
		return sorted[i].end < sorted[j].end
	})
	pos, prev := 0, ""
	for _, e := range sorted {
		switch {
		case e.begin < pos:
			return fmt.Errorf("%w: tensor %q (bytes [%d, %d]) overlaps tensor %q (ending at %d)", ErrOffsets, e.name, e.begin, e.end, prev, pos)
		case e.begin > pos:
			return fmt.Errorf("%w: bytes [%d, %d) belong to no tensor", ErrCoverage, pos, e.begin)
		}
		pos, prev = e.end, e.name
	}
	if pos != bufLen {
		return fmt.Errorf("%w: bytes [%d, %d) belong to no tensor", ErrCoverage, pos, bufLen)
	}
	return nil
}

// parseHeader parses and validates the JSON header, except for the checks
// that need the buffer length (see checkLayout).
func parseHeader(h []byte) (map[string]string, []entry, error) {
	if !utf8.Valid(h) {
		return nil, nil, fmt.Errorf("%w: header is not valid UTF-8", ErrHeader)
	}
	var (
		meta    map[string]string
		entries []entry
	)
	dec := json.NewDecoder(bytes.NewReader(h))
	err := walkObject(dec, "header", ErrDuplicate, func(key string) error {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return fmt.Errorf("%w: value of %q: %v", ErrHeader, key, err)
		}
		if key == metadataKey {
			m, err := parseMetadata(raw)
			meta = m
			return err
		}
		e, err := parseEntry(key, raw)
		if err != nil {
			return err
		}
		entries = append(entries, e)
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, nil, fmt.Errorf("%w: unexpected data after the JSON object", ErrHeader)
	}
	return meta, entries, nil
}

// walkObject reads one JSON object from dec and calls fn for each key, with
// dec positioned at the key's value; fn must consume the value. Repeated keys
// are reported with dupErr.
func walkObject(dec *json.Decoder, what string, dupErr error, fn func(key string) error) error {
	tok, err := dec.Token()
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrHeader, what, err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return fmt.Errorf("%w: %s is not a JSON object", ErrHeader, what)
	}
	seen := make(map[string]bool)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return fmt.Errorf("%w: %s: %v", ErrHeader, what, err)
		}
		key, ok := tok.(string)
		if !ok {
			return fmt.Errorf("%w: %s: expected a key, got %v", ErrHeader, what, tok)
		}
		if seen[key] {
			return fmt.Errorf("%w: %s: %q appears more than once", dupErr, what, key)
		}
		seen[key] = true
		if err := fn(key); err != nil {
			return err
		}
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return fmt.Errorf("%w: %s: %v", ErrHeader, what, err)
	}
	return nil
}

// parseMetadata parses the "__metadata__" value: null or an object of
// strings.
func parseMetadata(raw json.RawMessage) (map[string]string, error) {
	if string(raw) == "null" {
		return nil, nil
	}
	meta := make(map[string]string)
	dec := json.NewDecoder(bytes.NewReader(raw))
	err := walkObject(dec, metadataKey, ErrDuplicate, func(key string) error {
		tok, err := dec.Token()
		if err != nil {
			return fmt.Errorf("%w: %s[%q]: %v", ErrHeader, metadataKey, key, err)
		}
		s, ok := tok.(string)
		if !ok {
			return fmt.Errorf("%w: %s[%q] is not a string", ErrHeader, metadataKey, key)
		}
		meta[key] = s
		return nil
	})
	if err != nil {
		return nil, err
	}
	return meta, nil
}

// parseEntry parses and validates one tensor record.
func parseEntry(name string, raw json.RawMessage) (entry, error) {
	e := entry{name: name}
	var (
		dtype            string
		shape, offsets   []int64
		gotD, gotS, gotO bool
	)
	dec := json.NewDecoder(bytes.NewReader(raw))
	what := fmt.Sprintf("tensor %q", name)
	err := walkObject(dec, what, ErrHeader, func(key string) error {
		var err error
		switch key {
		case "dtype":
			gotD, err = true, dec.Decode(&dtype)
		case "shape":
			gotS, err = true, dec.Decode(&shape)
		case "data_offsets":
			gotO, err = true, dec.Decode(&offsets)
		default: // unknown fields are ignored, as in the reference implementation
			var skip json.RawMessage
			err = dec.Decode(&skip)
		}
		if err != nil {
			return fmt.Errorf("%w: %s: field %q: %v", ErrHeader, what, key, err)
		}
		return nil
	})
	if err != nil {
		return e, err
	}
	if !gotD || !gotS || !gotO || shape == nil {
		return e, fmt.Errorf("%w: %s: needs dtype, shape and data_offsets", ErrHeader, what)
	}
	e.dtype = DType(dtype)
	size := e.dtype.Size()
	if size == 0 {
		return e, fmt.Errorf("%w: %s: unknown dtype %q", ErrDType, what, dtype)
	}
	e.shape = make([]int, len(shape))
	for i, d := range shape {
		if d < 0 || d > math.MaxInt {
			return e, fmt.Errorf("%w: %s: invalid dimension %d in shape %v", ErrShape, what, d, shape)
		}
		e.shape[i] = int(d)
	}
	if len(offsets) != 2 {
		return e, fmt.Errorf("%w: %s: data_offsets must be [begin, end], got %v", ErrOffsets, what, offsets)
	}
	begin, end := offsets[0], offsets[1]
	if begin < 0 || end < 0 || begin > math.MaxInt || end > math.MaxInt {
		return e, fmt.Errorf("%w: %s: data_offsets %v out of range", ErrOffsets, what, offsets)
	}
	if begin > end {
		return e, fmt.Errorf("%w: %s: data_offsets begin %d > end %d", ErrOffsets, what, begin, end)
	}
	e.begin, e.end = int(begin), int(end)
	nb, err := Tensor{DType: e.dtype, Shape: e.shape}.byteLen()
	if err != nil {
		return e, fmt.Errorf("%s: %w", what, err)
	}
	if nb != e.end-e.begin {
		return e, fmt.Errorf("%w: %s: %s%v needs %d bytes, data_offsets [%d, %d] hold %d", ErrShape, what, dtype, e.shape, nb, e.begin, e.end, e.end-e.begin)
	}
	return e, nil
}
