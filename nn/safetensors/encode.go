package safetensors

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"unicode/utf8"
)

// Encode writes f to w in the safetensors format. Tensors are stored in the
// buffer in sorted name order, "__metadata__" (omitted when empty) comes
// first in the header, and the header is padded with spaces to a multiple of
// 8 bytes. Every tensor is validated before anything is written: its dtype
// must be known and its data length must match its shape.
func Encode(w io.Writer, f *File) error {
	header, names, err := encodeHeader(f)
	if err != nil {
		return err
	}
	var prefix [8]byte
	binary.LittleEndian.PutUint64(prefix[:], uint64(len(header)))
	if _, err := w.Write(prefix[:]); err != nil {
		return err
	}
	if _, err := w.Write(header); err != nil {
		return err
	}
	for _, name := range names {
		if data := f.Tensors[name].Data; len(data) > 0 {
			if _, err := w.Write(data); err != nil {
				return err
			}
		}
	}
	return nil
}

// encodeHeader validates f and builds its padded JSON header.
func encodeHeader(f *File) ([]byte, []string, error) {
	if f == nil {
		return nil, nil, errors.New("safetensors: Encode of a nil *File")
	}
	var h bytes.Buffer
	h.WriteByte('{')
	first := true
	sep := func() {
		if !first {
			h.WriteByte(',')
		}
		first = false
	}
	if len(f.Metadata) > 0 {
		keys := make([]string, 0, len(f.Metadata))
		for k := range f.Metadata {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		sep()
		h.WriteString(`"` + metadataKey + `":{`)
		for i, k := range keys {
			v := f.Metadata[k]
			if !utf8.ValidString(k) || !utf8.ValidString(v) {
				return nil, nil, fmt.Errorf("%w: metadata %q is not valid UTF-8", ErrHeader, k)
			}
			if i > 0 {
				h.WriteByte(',')
			}
			writeString(&h, k)
			h.WriteByte(':')
			writeString(&h, v)
		}
		h.WriteByte('}')
	}
	names := f.Names()
	offset := 0
	for _, name := range names {
		t := f.Tensors[name]
		if name == metadataKey {
			return nil, nil, fmt.Errorf("%w: %q is reserved and cannot name a tensor", ErrHeader, name)
		}
		if !utf8.ValidString(name) {
			return nil, nil, fmt.Errorf("%w: tensor name %q is not valid UTF-8", ErrHeader, name)
		}
		if _, err := t.check(); err != nil {
			return nil, nil, fmt.Errorf("tensor %q: %w", name, err)
		}
		sep()
		writeString(&h, name)
		h.WriteString(`:{"dtype":`)
		writeString(&h, string(t.DType))
		h.WriteString(`,"shape":[`)
		for i, d := range t.Shape {
			if i > 0 {
				h.WriteByte(',')
			}
			h.WriteString(strconv.Itoa(d))
		}
		end := offset + len(t.Data)
		fmt.Fprintf(&h, `],"data_offsets":[%d,%d]}`, offset, end)
		offset = end
	}
	h.WriteByte('}')
	for h.Len()%8 != 0 {
		h.WriteByte(' ')
	}
	if h.Len() > MaxHeaderSize {
		return nil, nil, fmt.Errorf("%w: header of %d bytes exceeds the %d byte limit", ErrHeaderTooLarge, h.Len(), MaxHeaderSize)
	}
	return h.Bytes(), names, nil
}

// writeString writes s as a JSON string without HTML escaping.
func writeString(h *bytes.Buffer, s string) {
	enc := json.NewEncoder(h)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)       // cannot fail for a string
	h.Truncate(h.Len() - 1) // drop the newline Encode appends
}

// WriteFile writes f to path atomically: it encodes into a temporary file in
// the same directory, syncs it and renames it over path. On any error the
// temporary file is removed and an existing file at path is left untouched.
// A new file gets mode 0644; a replaced file keeps its permission bits.
func WriteFile(path string, f *File) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("safetensors: writing %s: %w", path, err)
	}
	tmpName := tmp.Name()
	closed := false
	defer func() {
		if err != nil {
			if !closed {
				tmp.Close()
			}
			os.Remove(tmpName)
			err = fmt.Errorf("safetensors: writing %s: %w", path, err)
		}
	}()
	bw := bufio.NewWriterSize(tmp, 1<<20)
	if err := Encode(bw, f); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	mode := os.FileMode(0o644)
	if st, err := os.Stat(path); err == nil && st.Mode().IsRegular() {
		mode = st.Mode().Perm()
	}
	if err := tmp.Chmod(mode); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	closed = true
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmpName, path); err != nil {
		return err
	}
	// Make the rename durable; not every platform can sync a directory.
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
