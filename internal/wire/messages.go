package wire

import (
	"errors"
	"fmt"

	"github.com/vmihailenco/msgpack/v5"
)

// Version is the version of every message this build sends. A message of
// another version is rejected with ErrVersion.
const Version = 1

// Errors of this package.
var (
	// ErrVersion: a message of a version this build does not speak.
	ErrVersion = errors.New("wire: unknown message version")
	// ErrDecode: a message that is not valid msgpack for its type.
	ErrDecode = errors.New("wire: malformed message")
	// ErrFloats: a tensor payload whose length is not a multiple of 4.
	ErrFloats = errors.New("wire: tensor bytes are not whole float32s")
)

// Message is implemented by every wire message: its version field.
type Message interface{ version() int }

// Encode marshals m with msgpack.
func Encode(m Message) ([]byte, error) { return msgpack.Marshal(m) }

// Decode unmarshals data into m and checks its version.
func Decode(data []byte, m Message) error {
	if err := msgpack.Unmarshal(data, m); err != nil {
		return fmt.Errorf("%w: %v", ErrDecode, err)
	}
	if v := m.version(); v != Version {
		return fmt.Errorf("%w: %d (this build speaks %d)", ErrVersion, v, Version)
	}
	return nil
}

// GradChunk is one chunk of one rank's gradient for one step, pushed to the
// server owning the chunk. Data holds the chunk's mean gradient over the
// rank's N samples as raw little-endian float32s.
type GradChunk struct {
	V     int    `msgpack:"v"`
	Job   string `msgpack:"job"`
	Epoch uint64 `msgpack:"e"` // membership epoch
	Step  int64  `msgpack:"t"`
	Rank  int    `msgpack:"r"`
	N     int    `msgpack:"n"` // samples behind this gradient
	Chunk int    `msgpack:"c"` // chunk index within the server's range
	Data  []byte `msgpack:"d"`
	// Enc is Data's encoding (the job's compression; "" is float32).
	Enc Encoding `msgpack:"enc,omitempty"`
	// Covers, on a push by a host's aggregator, are the ranks whose
	// gradients Data sums (ascending) and Ns their sample counts: N is
	// their total and Data the mean over their samples. Empty: Data is
	// Rank's own. The pusher is Rank's worker or Rank's aggregator.
	Covers []int `msgpack:"cov,omitempty"`
	Ns     []int `msgpack:"ns,omitempty"`
}

func (m *GradChunk) version() int { return m.V }

// AckCode says what a server did with a push.
type AckCode string

// Ack codes. OK and Duplicate are successes; the others are refusals.
const (
	AckOK        AckCode = "ok"
	AckDuplicate AckCode = "duplicate" // already had it: acknowledged, ignored
	AckStale     AckCode = "stale"     // a step the server has finished
	AckFuture    AckCode = "future"    // a step the server has not reached
	AckEpoch     AckCode = "epoch"     // another membership epoch
	AckRejected  AckCode = "rejected"  // malformed, another job, unknown rank or chunk
	// AckConflict: an aggregate covering a rank whose chunk the server
	// already has (pushed by itself); the aggregator pushes the ranks one
	// by one instead.
	AckConflict AckCode = "conflict"
	// AckDirect (an aggregator to a worker of its host): the aggregate of
	// that step and chunk has gone without this push; push to the
	// parameter server directly.
	AckDirect AckCode = "direct"
	// AckNotHeld (a member to the coordinator): an assignment that goes on
	// with a job from a step, to a member that holds nothing of the job
	// (a parameter server restarted since the coordinator last heard it
	// serve the job). Not taken, and not a refusal: the coordinator holds
	// the job back for it, then replaces it.
	AckNotHeld AckCode = "not_held"
)

// Ack answers a push or a request.
type Ack struct {
	V      int     `msgpack:"v"`
	Code   AckCode `msgpack:"code"`
	Reason string  `msgpack:"reason,omitempty"`
	// Step answers a fence (see Assignment.Fence).
	Step int64 `msgpack:"step,omitempty"`
}

func (m *Ack) version() int { return m.V }

// Accepted reports whether the push was taken (or already held).
func (m *Ack) Accepted() bool { return m.Code == AckOK || m.Code == AckDuplicate }

// ParamChunk is one chunk of θ_Step, the parameters every member uses to
// compute step Step, published once by its server and sent on pulls.
type ParamChunk struct {
	V      int    `msgpack:"v"`
	Job    string `msgpack:"job"`
	Epoch  uint64 `msgpack:"e"`
	Step   int64  `msgpack:"t"`
	Server int    `msgpack:"s"`
	Chunk  int    `msgpack:"c"`
	Offset int    `msgpack:"o"` // of the chunk in the flat vector
	Data   []byte `msgpack:"d"`
	// Skipped is set when step Step−1 was skipped (a non-finite gradient).
	Skipped bool `msgpack:"skip,omitempty"`
	// Delta: Data is the change from θ_{Step−1} as this server last sent
	// it, in encoding Enc, to be added to it; otherwise Data is the chunk
	// whole, in float32.
	Delta bool     `msgpack:"delta,omitempty"`
	Enc   Encoding `msgpack:"enc,omitempty"`
}

func (m *ParamChunk) version() int { return m.V }

// PullRequest asks a server for chunk Chunk of θ_Step.
type PullRequest struct {
	V     int    `msgpack:"v"`
	Job   string `msgpack:"job"`
	Step  int64  `msgpack:"t"`
	Chunk int    `msgpack:"c"`
}

func (m *PullRequest) version() int { return m.V }

// HeaderAck is set on a pull reply that carries an Ack (why the chunk
// cannot be had) instead of a ParamChunk.
const HeaderAck = "Maas-Ack"

// Report is a parameter server's note to the coordinator.
type Report struct {
	V      int    `msgpack:"v"`
	ID     string `msgpack:"id,omitempty"` // the server's member id
	Job    string `msgpack:"job"`
	Server int    `msgpack:"s"`
	Kind   string `msgpack:"kind"` // "step", "missing", "bad_step", "failed", "checkpoint"
	Step   int64  `msgpack:"t"`
	// Epoch is the membership epoch the server was in: ranks are numbered
	// within it.
	Epoch uint64 `msgpack:"e"`
	// Bucket and Object locate a stored checkpoint (kind "checkpoint").
	Bucket string `msgpack:"bucket,omitempty"`
	Object string `msgpack:"object,omitempty"`
	// Missing lists the ranks a barrier timed out waiting for.
	Missing []int  `msgpack:"missing,omitempty"`
	Reason  string `msgpack:"reason,omitempty"`
}

func (m *Report) version() int { return m.V }
