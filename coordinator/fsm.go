package coordinator

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/maas-ml/maas/internal/wire"
)

// Errors of the state machine.
var (
	ErrNotFound   = errors.New("coordinator: not found")
	ErrConflict   = errors.New("coordinator: conflicting state")
	ErrBadCommand = errors.New("coordinator: malformed command")
)

// Command types.
const (
	CmdRegisterNode   = "register_node"
	CmdRegisterMember = "register_member"
	CmdSubmitJob      = "submit_job"
	CmdStartJob       = "start_job"
	CmdFinishJob      = "finish_job"
	CmdPauseJob       = "pause_job"
	CmdResumeJob      = "resume_job"
	CmdCheckpoint     = "checkpoint"
	CmdPublishModel   = "publish_model"
)

// Command is one Raft log entry. Time is set by the proposer, so applying
// a command never reads the clock.
type Command struct {
	Type      string    `json:"type"`
	RequestID string    `json:"request_id"`
	Time      time.Time `json:"time"`

	Node       *NodeInfo         `json:"node,omitempty"`
	Member     *MemberInfo       `json:"member,omitempty"`
	Job        *JobRecord        `json:"job,omitempty"`
	Start      *StartJob         `json:"start,omitempty"`
	Finish     *FinishJob        `json:"finish,omitempty"`
	Pause      *PauseJob         `json:"pause,omitempty"`
	Checkpoint *CheckpointRecord `json:"checkpoint,omitempty"`
	Model      *ModelRecord      `json:"model,omitempty"`
}

// NodeInfo is a coordinator node: its Raft id and HTTP address.
type NodeInfo struct {
	ID       string `json:"id"`
	HTTPAddr string `json:"http_addr"`
}

// MemberInfo is a registered worker or parameter server.
type MemberInfo struct {
	ID      string `json:"id"`
	Kind    string `json:"kind"` // "worker" or "paramserver"
	Host    string `json:"host"`
	Threads int    `json:"threads"`
	Device  string `json:"device,omitempty"` // what it computes on; "" from older members
}

// Membership is one membership epoch of a job: its workers in rank order,
// its servers with their key ranges, and the step it starts from.
type Membership struct {
	Epoch    uint64       `json:"epoch"`
	Members  []string     `json:"members"`
	Servers  []string     `json:"servers"`
	Ranges   []wire.Range `json:"ranges"`
	FromStep int64        `json:"from_step"`
	// Reset: the servers restart their ranges at FromStep from the
	// checkpoint objects Restore (one per range; none: the seed's θ_0).
	Reset   bool     `json:"reset,omitempty"`
	Restore []string `json:"restore,omitempty"`
}

// JobRecord is a job in the FSM.
type JobRecord struct {
	ID               string    `json:"id"`
	Name             string    `json:"name"`
	Spec             string    `json:"spec"` // YAML
	Workers          int       `json:"workers"`
	ParameterServers int       `json:"parameter_servers"`
	State            string    `json:"state"`
	Reason           string    `json:"reason,omitempty"`
	Submitted        time.Time `json:"submitted"`
	Started          time.Time `json:"started,omitzero"`
	Finished         time.Time `json:"finished,omitzero"`
	NumParams        int       `json:"num_params"`
	StepsPerEpoch    int64     `json:"steps_per_epoch"`
	TotalSteps       int64     `json:"total_steps"`
	Epochs           int       `json:"epochs"`
	// Init names the initial weights in wire.CheckpointBucket the job
	// starts from; empty: the seed's initialisation.
	Init string `json:"init,omitempty"`

	Memberships []Membership       `json:"memberships,omitempty"`
	Checkpoints []CheckpointRecord `json:"checkpoints,omitempty"`
	// Model is the version this job published.
	Model *ModelRecord `json:"model,omitempty"`
}

// Current returns the job's latest membership epoch, or nil.
func (j *JobRecord) Current() *Membership {
	if len(j.Memberships) == 0 {
		return nil
	}
	return &j.Memberships[len(j.Memberships)-1]
}

// CommittedStep is the step of the last committed checkpoint (0: none).
func (j *JobRecord) CommittedStep() int64 {
	if len(j.Checkpoints) == 0 {
		return 0
	}
	return j.Checkpoints[len(j.Checkpoints)-1].Step
}

// StartJob starts a queued job (or moves a running one to a new epoch).
type StartJob struct {
	Job        string     `json:"job"`
	Membership Membership `json:"membership"`
}

// FinishJob ends a job: succeeded, failed or cancelled, with a reason.
type FinishJob struct {
	Job    string `json:"job"`
	State  string `json:"state"`
	Reason string `json:"reason,omitempty"`
}

// PauseJob pauses a running job (CmdPauseJob): its members cannot reach
// each other (NATS is away) for longer than its barrier timeout. Its
// members keep their places and wait; CmdResumeJob (Reason unused) or a
// new membership epoch makes it running again.
type PauseJob struct {
	Job    string `json:"job"`
	Reason string `json:"reason"`
}

// CheckpointRecord is a committed checkpoint: every range of step Step is
// stored in the Object Store.
type CheckpointRecord struct {
	Job     string   `json:"job"`
	Step    int64    `json:"step"`
	Bucket  string   `json:"bucket"`
	Objects []string `json:"objects"` // one per server range, in range order
}

// ModelRecord is a published model version.
type ModelRecord struct {
	Name    string             `json:"name"`
	Version int                `json:"version"` // assigned by the FSM
	Job     string             `json:"job"`
	Created time.Time          `json:"created"`
	Bucket  string             `json:"bucket"`
	Prefix  string             `json:"prefix"`
	Files   []string           `json:"files"`
	Metrics map[string]float64 `json:"metrics,omitempty"`
}

// keepCheckpoints is how many committed checkpoints a job keeps.
const keepCheckpoints = 2

// appliedKeep bounds the request ids remembered for idempotency.
const appliedKeep = 100000

// State is everything the coordinator agrees on.
type State struct {
	Nodes   map[string]NodeInfo      `json:"nodes"`
	Members map[string]MemberInfo    `json:"members"`
	Jobs    map[string]*JobRecord    `json:"jobs"`
	Order   []string                 `json:"order"` // job ids, oldest first
	Models  map[string][]ModelRecord `json:"models"`
	JobSeq  int                      `json:"job_seq"`
	// Applied maps request ids to their result, oldest first in AppliedIDs.
	Applied    map[string]string `json:"applied"`
	AppliedIDs []string          `json:"applied_ids"`
	// Index is the Raft log index of the last entry applied: two nodes at
	// the same index hold the same state.
	Index uint64 `json:"index"`
}

func newState() *State {
	return &State{Nodes: map[string]NodeInfo{}, Members: map[string]MemberInfo{}, Jobs: map[string]*JobRecord{},
		Models: map[string][]ModelRecord{}, Applied: map[string]string{}}
}

// FSM is the coordinator's raft.FSM.
type FSM struct {
	mu sync.RWMutex // guards st
	st *State
}

var _ raft.FSM = (*FSM)(nil)

// NewFSM returns an empty state machine.
func NewFSM() *FSM { return &FSM{st: newState()} }

// ApplyResult is what Apply returns for a command: its result (a job id,
// a model version) or the reason it was refused.
type ApplyResult struct {
	Value string
	Err   error
}

// Apply applies one log entry.
func (f *FSM) Apply(l *raft.Log) any {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.st.Index = l.Index
	var c Command
	if err := json.Unmarshal(l.Data, &c); err != nil {
		return ApplyResult{Err: fmt.Errorf("%w: %v", ErrBadCommand, err)}
	}
	return f.applyLocked(&c)
}

// Digest returns the index of the last entry applied and a SHA-256 of the
// whole state (JSON, map keys sorted), read together: every node that has
// applied the same entries gives the same pair.
func (f *FSM) Digest() (index uint64, digest string, err error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	b, err := json.Marshal(f.st)
	if err != nil {
		return 0, "", err
	}
	sum := sha256.Sum256(b)
	return f.st.Index, hex.EncodeToString(sum[:]), nil
}

func (f *FSM) applyLocked(c *Command) ApplyResult {
	st := f.st
	if c.RequestID != "" {
		if v, done := st.Applied[c.RequestID]; done {
			return ApplyResult{Value: v} // a retry: already applied
		}
	}
	v, err := f.execLocked(c)
	if err != nil {
		return ApplyResult{Err: err}
	}
	if c.RequestID != "" {
		st.Applied[c.RequestID] = v
		st.AppliedIDs = append(st.AppliedIDs, c.RequestID)
		if len(st.AppliedIDs) > appliedKeep {
			delete(st.Applied, st.AppliedIDs[0])
			st.AppliedIDs = st.AppliedIDs[1:]
		}
	}
	return ApplyResult{Value: v}
}

var idUnsafe = regexp.MustCompile(`[^A-Za-z0-9_-]+`)

// execLocked applies c with its command's function (see commands).
func (f *FSM) execLocked(c *Command) (string, error) {
	apply, ok := commands[c.Type]
	if !ok {
		return "", fmt.Errorf("%w: unknown type %q", ErrBadCommand, c.Type)
	}
	return apply(f.st, c)
}

// Read runs fn with the state locked for reading; fn must not keep
// references into it.
func (f *FSM) Read(fn func(st *State)) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	fn(f.st)
}

// Snapshot captures the whole state.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	b, err := json.Marshal(f.st)
	if err != nil {
		return nil, err
	}
	return snapshot(b), nil
}

// Restore replaces the state with a snapshot's.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	st := newState()
	if err := json.NewDecoder(rc).Decode(st); err != nil {
		return fmt.Errorf("coordinator: restore snapshot: %w", err)
	}
	if st.Nodes == nil {
		st.Nodes = map[string]NodeInfo{}
	}
	if st.Members == nil {
		st.Members = map[string]MemberInfo{}
	}
	if st.Jobs == nil {
		st.Jobs = map[string]*JobRecord{}
	}
	if st.Models == nil {
		st.Models = map[string][]ModelRecord{}
	}
	if st.Applied == nil {
		st.Applied = map[string]string{}
	}
	f.mu.Lock()
	f.st = st
	f.mu.Unlock()
	return nil
}

type snapshot []byte

func (s snapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(s); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s snapshot) Release() {}
