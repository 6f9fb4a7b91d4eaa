package cluster

import "errors"

// Errors returned by this package. Test for them with errors.Is; the
// returned errors wrap them with what was wrong.
var (
	// ErrInvalid: the cluster file is not valid. Validate returns one
	// *FieldError per problem, joined.
	ErrInvalid = errors.New("cluster: invalid cluster file")
	// ErrSecretsExist: the secrets directory already holds secrets and
	// --force was not given.
	ErrSecretsExist = errors.New("cluster: secrets already exist")
	// ErrSecretsDir: the secrets directory cannot be used (not a
	// directory, readable by others, or its parent is missing).
	ErrSecretsDir = errors.New("cluster: unusable secrets directory")
)

// FieldError is one problem with one field of a cluster file. Path names
// the field as in the file, for example hosts[2].roles[1].
type FieldError struct {
	Path string
	Msg  string
}

func (e *FieldError) Error() string { return e.Path + ": " + e.Msg }

// Unwrap makes errors.Is(err, ErrInvalid) hold.
func (e *FieldError) Unwrap() error { return ErrInvalid }
