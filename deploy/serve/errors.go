package serve

import (
	"errors"
	"fmt"
)

// Errors of this package, matched with errors.Is.
var (
	// ErrConfig: a Config that cannot run; the message names the field.
	ErrConfig = errors.New("serve: invalid config")
	// ErrModelNotFound: no model of that name is served (404).
	ErrModelNotFound = errors.New("serve: model not found")
	// ErrVersionNotFound: the model is served, but not that version (404).
	ErrVersionNotFound = errors.New("serve: model version not found")
	// ErrLoad: a model version could not be loaded; what was served before
	// still is.
	ErrLoad = errors.New("serve: model failed to load")
	// ErrVersionLoaded: that version is served already; loading it again
	// changes nothing.
	ErrVersionLoaded = errors.New("serve: model version already served")
	// ErrVersionOld: the version is older than the two that are served.
	ErrVersionOld = errors.New("serve: model version older than those served")
	// ErrBadRequest: a malformed inference request (400); an *InputError
	// names the input at fault.
	ErrBadRequest = errors.New("serve: bad request")
	// ErrQueueFull: the version's queue is full (429); retry later.
	ErrQueueFull = errors.New("serve: queue full")
	// ErrTimeout: the request did not get its result within
	// Config.RequestTimeout (503).
	ErrTimeout = errors.New("serve: request timed out")
	// ErrClosed: the server is shut down.
	ErrClosed = errors.New("serve: server closed")
)

// InputError is a request error about one tensor of an inference request,
// e.g. `input "input": shape [3 28 28]: expected [N, 1, 28, 28] or [N, 784]`.
type InputError struct {
	// Kind is "input" or "output".
	Kind string
	Name string
	Msg  string
}

func (e *InputError) Error() string { return fmt.Sprintf("%s %q: %s", e.Kind, e.Name, e.Msg) }

// Unwrap makes errors.Is(err, ErrBadRequest) hold.
func (e *InputError) Unwrap() error { return ErrBadRequest }

func inputErr(name, format string, args ...any) error {
	return &InputError{Kind: "input", Name: name, Msg: fmt.Sprintf(format, args...)}
}

func outputErr(name, format string, args ...any) error {
	return &InputError{Kind: "output", Name: name, Msg: fmt.Sprintf(format, args...)}
}

// badRequest wraps ErrBadRequest with a message.
func badRequest(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadRequest, fmt.Sprintf(format, args...))
}
