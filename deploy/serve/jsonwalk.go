package serve

import (
	"bytes"
	"encoding/json"
	"errors"
)

// maxJSONDepth bounds the nesting of a request outside tensor data.
const maxJSONDepth = 64

// jsonWalker reads a JSON document in one pass, so that an inference
// request's tensor data, nearly all of its bytes, is scanned once, straight
// into float32s, instead of being validated, skipped and copied by
// encoding/json first. Small fields go through encoding/json on their own
// bytes. Every error wraps ErrBadRequest.
type jsonWalker struct {
	b []byte
	i int
}

func (w *jsonWalker) space() {
	for w.i < len(w.b) && isSpace(w.b[w.i]) {
		w.i++
	}
}

// peek returns the next byte after spaces, or 0 at the end.
func (w *jsonWalker) peek() byte {
	w.space()
	if w.i >= len(w.b) {
		return 0
	}
	return w.b[w.i]
}

func (w *jsonWalker) syntaxErr(what string) error {
	return badRequest("malformed JSON at byte %d: %s", w.i, what)
}

// object calls fn for each key of the object that comes next, with the
// walker at the key's value, which fn must consume.
func (w *jsonWalker) object(fn func(key string) error) error {
	if w.peek() != '{' {
		return w.syntaxErr("expected an object")
	}
	w.i++
	if w.peek() == '}' {
		w.i++
		return nil
	}
	for {
		if w.peek() != '"' {
			return w.syntaxErr("expected a key")
		}
		key, err := w.key()
		if err != nil {
			return err
		}
		if w.peek() != ':' {
			return w.syntaxErr("expected ':' after a key")
		}
		w.i++
		if err := fn(key); err != nil {
			return err
		}
		switch w.peek() {
		case ',':
			w.i++
		case '}':
			w.i++
			return nil
		default:
			return w.syntaxErr("expected ',' or '}' in an object")
		}
	}
}

// array calls fn for each element of the array that comes next, with the
// walker at the element, which fn must consume.
func (w *jsonWalker) array(fn func(i int) error) error {
	if w.peek() != '[' {
		return w.syntaxErr("expected an array")
	}
	w.i++
	if w.peek() == ']' {
		w.i++
		return nil
	}
	for n := 0; ; n++ {
		if err := fn(n); err != nil {
			return err
		}
		switch w.peek() {
		case ',':
			w.i++
		case ']':
			w.i++
			return nil
		default:
			return w.syntaxErr("expected ',' or ']' in an array")
		}
	}
}

// key reads a string.
func (w *jsonWalker) key() (string, error) {
	raw, err := w.str()
	if err != nil {
		return "", err
	}
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw[1 : len(raw)-1]), nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", w.syntaxErr(err.Error())
	}
	return s, nil
}

// str reads a string and returns it raw, quotes included.
func (w *jsonWalker) str() ([]byte, error) {
	start := w.i
	w.i++ // the opening quote
	for w.i < len(w.b) {
		switch c := w.b[w.i]; {
		case c == '"':
			w.i++
			return w.b[start:w.i], nil
		case c == '\\':
			w.i += 2
		case c < 0x20:
			return nil, w.syntaxErr("control character in a string")
		default:
			w.i++
		}
	}
	return nil, w.syntaxErr("unterminated string")
}

// skip consumes the value that comes next, checking its syntax.
func (w *jsonWalker) skip(depth int) error {
	if depth > maxJSONDepth {
		return w.syntaxErr("nested too deep")
	}
	switch w.peek() {
	case '{':
		return w.object(func(string) error { return w.skip(depth + 1) })
	case '[':
		return w.array(func(int) error { return w.skip(depth + 1) })
	case '"':
		_, err := w.str()
		return err
	case 0:
		return w.syntaxErr("unexpected end")
	}
	start := w.i
	for w.i < len(w.b) && !isSpace(w.b[w.i]) && w.b[w.i] != ',' && w.b[w.i] != '}' && w.b[w.i] != ']' {
		w.i++
	}
	tok := w.b[start:w.i]
	switch string(tok) {
	case "true", "false", "null":
		return nil
	}
	if len(tok) > 0 && (tok[0] == '-' || tok[0] >= '0' && tok[0] <= '9') && json.Valid(tok) {
		return nil
	}
	w.i = start
	return w.syntaxErr("invalid value")
}

// raw consumes the value that comes next and returns its bytes.
func (w *jsonWalker) raw() ([]byte, error) {
	w.space()
	start := w.i
	if err := w.skip(0); err != nil {
		return nil, err
	}
	return w.b[start:w.i], nil
}

// decode consumes the value that comes next into v with encoding/json;
// field names it in errors.
func (w *jsonWalker) decode(field string, v any) error {
	raw, err := w.raw()
	if err != nil {
		return err
	}
	if err := json.Unmarshal(raw, v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return badRequest("field %q: %s where %s was expected", field, te.Value, te.Type)
		}
		return badRequest("field %q: %v", field, err)
	}
	return nil
}

// end checks that nothing but spaces follows.
func (w *jsonWalker) end() error {
	if w.peek() != 0 {
		return w.syntaxErr("unexpected data after the request")
	}
	return nil
}
