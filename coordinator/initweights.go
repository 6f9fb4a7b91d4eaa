package coordinator

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/maas-ml/maas/internal/natsconn"
	"github.com/maas-ml/maas/internal/wire"
	"github.com/maas-ml/maas/nn"
	"github.com/maas-ml/maas/nn/safetensors"
)

// maxInitBytes bounds the initial weights a submission may carry (64M
// float32 parameters).
const maxInitBytes = 256 << 20

// checkInitWeights reports initial weights that do not fit model m: not a
// safetensors file, a tensor missing, of another shape or dtype, or one the
// model does not have. The error names the tensor.
func checkInitWeights(m *nn.Model, data []byte) error {
	f, err := safetensors.Decode(data)
	if err != nil {
		return err
	}
	return m.SetWeights(f)
}

// storeInitWeights puts data into the checkpoint bucket under its digest
// (a resubmission of the same weights stores nothing new) and returns the
// object's name, for the job's parameter servers to load θ_0 from.
func (n *Node) storeInitWeights(ctx context.Context, data []byte) (string, error) {
	sum := sha256.Sum256(data)
	name := wire.InitObject(hex.EncodeToString(sum[:]))
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	js, err := wire.JetStream(n.nc)
	if err != nil {
		return "", err
	}
	store, err := js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: wire.CheckpointBucket,
		Description: "maas parameter-server checkpoints", Replicas: natsconn.Replicas(n.nc)})
	if err != nil {
		return "", fmt.Errorf("checkpoint bucket: %w", err)
	}
	if info, err := store.GetInfo(ctx, name); err == nil && info.Size == uint64(len(data)) {
		return name, nil
	}
	if _, err := store.Put(ctx, jetstream.ObjectMeta{Name: name, Description: "initial weights"}, bytes.NewReader(data)); err != nil {
		return "", fmt.Errorf("store initial weights %s: %w", name, err)
	}
	return name, nil
}
