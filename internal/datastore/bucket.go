package datastore

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/maas-ml/maas/internal/natsconn"
	"github.com/maas-ml/maas/internal/wire"
)

// openBucket opens the data bucket, creating it when create is set. A
// missing bucket without create is ErrNotFound.
func openBucket(ctx context.Context, js jetstream.JetStream, create bool) (jetstream.ObjectStore, error) {
	store, err := js.ObjectStore(ctx, wire.DataBucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		if !create {
			return nil, fmt.Errorf("%w: the bucket %s does not exist yet; push a dataset with `maas data push`", ErrNotFound, wire.DataBucket)
		}
		store, err = js.CreateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: wire.DataBucket, Description: "maas datasets (maas data push)",
			Replicas: natsconn.Replicas(js.Conn())})
		if errors.Is(err, jetstream.ErrBucketExists) { // pushed at the same time
			store, err = js.ObjectStore(ctx, wire.DataBucket)
		}
	}
	if err != nil {
		return nil, explain(js, fmt.Errorf("bucket %s: %w", wire.DataBucket, err))
	}
	return store, nil
}

// explain wraps err with ErrNoJetStream or ErrPermission when that is
// why a NATS request failed: a server without JetStream answers no one,
// and one that refuses a subject lets the request time out and tells the
// connection why.
func explain(js jetstream.JetStream, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrNoJetStream) || errors.Is(err, ErrPermission):
		return err
	case errors.Is(err, jetstream.ErrJetStreamNotEnabled), errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount),
		errors.Is(err, nats.ErrNoResponders):
		return fmt.Errorf("%w (%v); start the NATS server with a JetStream store directory (`maas nats --store-dir DIR`)", ErrNoJetStream, err)
	}
	if last := js.Conn().LastError(); errors.Is(last, nats.ErrPermissionViolation) && strings.Contains(last.Error(), wire.DataBucket) {
		return fmt.Errorf("%w: %v (%v)", ErrPermission, last, err)
	}
	return err
}
