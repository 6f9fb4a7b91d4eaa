package wire

// Control-plane subjects and messages between the coordinator leader and
// the members (workers and parameter servers).

// MemberSubject is where the coordinator sends member id its assignments
// and stop orders (request/reply).
func MemberSubject(id string) string { return "maas.ctl.member." + id }

// Member kinds.
const (
	KindWorker      = "worker"
	KindParamServer = "paramserver"
)

// Register announces a member to the coordinator.
type Register struct {
	V       int    `msgpack:"v"`
	ID      string `msgpack:"id"`
	Kind    string `msgpack:"kind"`
	Host    string `msgpack:"host"`
	Threads int    `msgpack:"threads"`
	// Device is what the member computes on, e.g. "cpu (go+avx2, 8
	// threads)" or "NVIDIA H200 (cuda:0)"; "" from older members.
	Device string `msgpack:"device,omitempty"`
	// Boot names the process incarnation its heartbeats carry (Heartbeat.
	// Boot): heartbeats of an earlier incarnation, delayed past this
	// registration on another path, are ignored.
	Boot string `msgpack:"boot,omitempty"`
}

func (m *Register) version() int { return m.V }

// Heartbeat says a member is alive, and which job it is working on.
type Heartbeat struct {
	V    int    `msgpack:"v"`
	ID   string `msgpack:"id"`
	Kind string `msgpack:"kind"`
	Job  string `msgpack:"job,omitempty"`
	// Boot names the member's process incarnation, new at every start: a
	// member restarted under its id is seen at its first heartbeat.
	Boot string `msgpack:"boot,omitempty"`
}

func (m *Heartbeat) version() int { return m.V }

// Assignment gives a member its part of a job for one membership epoch, or
// (Stop) tells it to stop working on the job.
type Assignment struct {
	V    int    `msgpack:"v"`
	Job  string `msgpack:"job"`
	Stop bool   `msgpack:"stop,omitempty"`
	// Boot, when set, is the incarnation of the member (Register.Boot)
	// the assignment is for: a parameter server's epoch that goes on
	// with the range it holds. Another incarnation (the process restarted
	// while the assignment was on its way) answers AckNotHeld.
	Boot  string `msgpack:"boot,omitempty"`
	Spec  string `msgpack:"spec,omitempty"` // the job spec, YAML
	Epoch uint64 `msgpack:"e"`
	// Rank is the worker's rank, or the server's index in Ranges.
	Rank    int `msgpack:"rank"`
	Members int `msgpack:"members"`
	// MemberIDs (servers) are the workers' ids by rank: a push is taken
	// only from the rank's own worker (its id ends the subject).
	MemberIDs []string `msgpack:"member_ids,omitempty"`
	// Groups, when set (a job aggregating per host), is for each rank the
	// rank of its host's aggregator, the host's lowest: the workers of a
	// host push to it, and it pushes their sum.
	Groups        []int   `msgpack:"groups,omitempty"`
	Ranges        []Range `msgpack:"ranges"`
	ChunkFloats   int     `msgpack:"chunk,omitempty"`
	FromStep      int64   `msgpack:"from"`
	TotalSteps    int64   `msgpack:"total"`
	StepsPerEpoch int64   `msgpack:"spe"`
	// BarrierTimeoutMS bounds a server's wait for a step's last push;
	// StepTimeoutMS a worker's wait for θ_{t+1} and its push retries.
	BarrierTimeoutMS int64 `msgpack:"barrier_ms,omitempty"`
	StepTimeoutMS    int64 `msgpack:"step_ms,omitempty"`
	// Reset (servers): start the range afresh at FromStep, from Restore,
	// the checkpoint object of the range at that step in the checkpoint
	// bucket, or from the seed's initialisation when Restore is empty
	// (FromStep 0). A server's loss resets every range to the last
	// committed checkpoint.
	Reset   bool   `msgpack:"reset,omitempty"`
	Restore string `msgpack:"restore,omitempty"`
	// Init (servers) names θ_0 when the job starts from given weights: a
	// safetensors file in CheckpointBucket (see InitObject); empty: the
	// seed's initialisation.
	Init string `msgpack:"init,omitempty"`
	// Fence (servers, request/reply): stop completing steps of Epoch and
	// answer the step held (Ack.Step), for FenceMS or until the next
	// epoch, while the coordinator replaces the epoch.
	Fence   bool  `msgpack:"fence,omitempty"`
	FenceMS int64 `msgpack:"fence_ms,omitempty"`
}

func (m *Assignment) version() int { return m.V }

// Progress is one worker's figures for one step.
type Progress struct {
	V       int     `msgpack:"v"`
	ID      string  `msgpack:"id,omitempty"` // the worker's
	Job     string  `msgpack:"job"`
	Rank    int     `msgpack:"rank"`
	Step    int64   `msgpack:"t"`
	LossSum float64 `msgpack:"loss_sum"` // loss × samples
	Correct int     `msgpack:"correct"`
	N       int     `msgpack:"n"`
	// Durations of the step's phases, in microseconds.
	ComputeUS int64 `msgpack:"compute_us"`
	PushUS    int64 `msgpack:"push_us"`
	WaitUS    int64 `msgpack:"wait_us"`
	// Eval, when set, makes this a report of the model evaluated at an
	// epoch's end (rank 0), not of a step.
	Eval *EvalReport `msgpack:"eval,omitempty"`
}

// EvalReport is the model after an epoch evaluated on a held-out set.
type EvalReport struct {
	Epoch    int64   `msgpack:"e"` // 0-based
	Step     int64   `msgpack:"t"` // the epoch's last step
	Set      string  `msgpack:"set"`
	Loss     float64 `msgpack:"loss"`
	Accuracy float64 `msgpack:"acc"`
}

func (m *Progress) version() int { return m.V }

// Done reports that a member's part of a job ended.
type Done struct {
	V    int    `msgpack:"v"`
	Job  string `msgpack:"job"`
	ID   string `msgpack:"id"`
	Rank int    `msgpack:"rank"`
	// Err is why it failed; empty on success.
	Err string `msgpack:"err,omitempty"`
	// The model artifact (worker rank 0 on success).
	Bucket  string             `msgpack:"bucket,omitempty"`
	Prefix  string             `msgpack:"prefix,omitempty"`
	Files   []string           `msgpack:"files,omitempty"`
	Metrics map[string]float64 `msgpack:"metrics,omitempty"`
}

func (m *Done) version() int { return m.V }

// ModelPublished announces a new model version in the model index, on
// SubjModelPublished; serving endpoints load it from the Object Store.
type ModelPublished struct {
	V       int                `msgpack:"v"`
	Name    string             `msgpack:"name"`
	Version int                `msgpack:"version"`
	Job     string             `msgpack:"job"`
	Bucket  string             `msgpack:"bucket"`
	Prefix  string             `msgpack:"prefix"`
	Files   []string           `msgpack:"files"`
	Metrics map[string]float64 `msgpack:"metrics,omitempty"`
}

func (m *ModelPublished) version() int { return m.V }
