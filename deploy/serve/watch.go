package serve

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/maas-ml/maas/internal/modeldir"
	"github.com/maas-ml/maas/internal/wire"
)

// fetchTimeout bounds fetching one version's files.
const fetchTimeout = time.Minute

// WatchPublished loads every model version announced on
// wire.SubjModelPublished: it fetches the version's model.yaml and
// model.safetensors from the Object Store and loads them (see Load).
// A version that cannot be fetched or loaded is logged and counted in
// maas_serve_load_failures_total; what was served is served still. It
// returns nil when ctx ends, or an error if it cannot subscribe.
func (s *Server) WatchPublished(ctx context.Context, nc *nats.Conn) error {
	js, err := wire.JetStream(nc)
	if err != nil {
		return fmt.Errorf("serve: JetStream: %w", err)
	}
	msgs := make(chan *nats.Msg, 64)
	sub, err := nc.ChanSubscribe(wire.SubjModelPublished, msgs)
	if err != nil {
		return fmt.Errorf("serve: subscribe to %s: %w", wire.SubjModelPublished, err)
	}
	defer sub.Unsubscribe()
	s.log.Info("watching for published models", zap.String("subject", wire.SubjModelPublished))
	for {
		select {
		case <-ctx.Done():
			return nil
		case m := <-msgs:
			s.onPublished(ctx, js, m.Data)
		}
	}
}

// onPublished loads the version one announcement names.
func (s *Server) onPublished(ctx context.Context, js jetstream.JetStream, data []byte) {
	var mp wire.ModelPublished
	if err := wire.Decode(data, &mp); err != nil {
		s.loadFailed("", 0, fmt.Errorf("%w: announcement on %s: %v", ErrLoad, wire.SubjModelPublished, err))
		return
	}
	if err := s.table.Load().check(mp.Name, mp.Version); err != nil {
		return // served already, or older than what is
	}
	s.log.Info("model published", zap.String("model", mp.Name), zap.Int("version", mp.Version), zap.String("job", mp.Job))
	fctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()
	specYAML, weights, err := fetchObjects(fctx, js, mp.Bucket, mp.Prefix)
	if err != nil {
		s.loadFailed(mp.Name, mp.Version, fmt.Errorf("%w: %s version %d: %v", ErrLoad, mp.Name, mp.Version, err))
		return
	}
	// Load logs and counts a failure; a version served meanwhile is none.
	s.Load(mp.Name, mp.Version, specYAML, weights)
}

// fetchObjects reads a version's two files from the Object Store.
func fetchObjects(ctx context.Context, js jetstream.JetStream, bucket, prefix string) (specYAML, weights []byte, err error) {
	if bucket == "" {
		bucket = wire.ModelBucket
	}
	store, err := js.ObjectStore(ctx, bucket)
	if err != nil {
		return nil, nil, fmt.Errorf("object store bucket %s: %w", bucket, err)
	}
	if specYAML, err = store.GetBytes(ctx, prefix+modeldir.SpecFile); err != nil {
		return nil, nil, fmt.Errorf("object %s/%s%s: %w", bucket, prefix, modeldir.SpecFile, err)
	}
	if weights, err = store.GetBytes(ctx, prefix+modeldir.WeightsFile); err != nil {
		return nil, nil, fmt.Errorf("object %s/%s%s: %w", bucket, prefix, modeldir.WeightsFile, err)
	}
	return specYAML, weights, nil
}
