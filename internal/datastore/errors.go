package datastore

import "errors"

// Sentinel errors; test for them with errors.Is.
var (
	// ErrNotFound reports a dataset with no manifest in the bucket (never
	// pushed, removed, or its push not finished).
	ErrNotFound = errors.New("datastore: no such dataset")
	// ErrDigest reports a shard whose bytes do not match the manifest's
	// SHA-256.
	ErrDigest = errors.New("datastore: shard digest mismatch")
	// ErrFormat reports a manifest or shard that is not what this
	// version of maas writes.
	ErrFormat = errors.New("datastore: bad format")
	// ErrNoJetStream reports a NATS server without JetStream, which the
	// Object Store needs.
	ErrNoJetStream = errors.New("datastore: JetStream is not enabled on the NATS server")
	// ErrPermission reports a NATS server that refused the bucket's
	// subjects to this connection's user.
	ErrPermission = errors.New("datastore: NATS refused access to the data bucket")
)
