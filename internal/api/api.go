// Package api is the coordinator's HTTP+JSON API: the request and response
// types shared by the coordinator's server and the CLI's client, and the
// client itself.
//
// Endpoints (all under the coordinator's address, JSON bodies):
//
//	POST /v1/jobs                          SubmitRequest → 201 SubmitResponse; 400 Error naming the field
//	GET  /v1/jobs                          → []JobStatus (newest first)
//	GET  /v1/jobs/{id}                     → JobStatus; 404 Error
//	POST /v1/jobs/{id}/cancel              → JobStatus
//	GET  /v1/jobs/{id}/logs?since=N        → LogPage (entries with Seq > N)
//	GET  /v1/jobs/{id}/metrics             → JobMetrics (training curves)
//	GET  /v1/models                        → []ModelVersion (every version)
//	GET  /v1/models/{name}                 → ModelVersion (the newest)
//	GET  /v1/models/{name}/versions/{v}    → ModelVersion
//	GET  /v1/models/{name}/versions/{v}/files/{file} → the artifact file's bytes
//	GET  /v1/cluster                       → ClusterStatus
//	GET  /v1/raft/state                    → RaftState (this node's own)
//	POST /v1/raft/join                     JoinRequest → 200 (leader only)
//	POST /v1/raft/remove                   RemoveRequest → 200 (leader only)
//
// Every coordinator also serves the web dashboard at /ui/ (package
// coordinator/dashboard, docs/operations.md).
//
// A follower that receives a call answers 307 to the leader's address; the
// client follows it. With no leader (no quorum) calls fail with 503 and an
// Error saying so.
//
// A coordinator started with API tokens (tokens.json) wants
// "Authorization: Bearer TOKEN" on every call, with a token whose role is
// the route's or above: read for every GET, submit to submit and cancel
// jobs, admin for POST /v1/raft/join. It refuses others with 401 (no,
// unknown or expired token; WWW-Authenticate: Bearer) or 403 (role too
// low), and an Error whose Reason says which.
package api

import "time"

// DefaultServer is the coordinator address the CLI uses when neither
// --server nor MAAS_SERVER is given: the embedded cluster of `maas local`.
const DefaultServer = "http://127.0.0.1:7070"

// Job states.
const (
	JobQueued  = "queued"
	JobRunning = "running"
	// JobPaused: its members could not reach each other (NATS away) for
	// longer than its barrier timeout; it resumes when they can.
	JobPaused    = "paused"
	JobSucceeded = "succeeded"
	JobFailed    = "failed"
	JobCancelled = "cancelled"
)

// Terminal reports whether a job in state s is finished for good.
func Terminal(s string) bool { return s == JobSucceeded || s == JobFailed || s == JobCancelled }

// SubmitRequest submits a job.
type SubmitRequest struct {
	// Spec is the job spec, as YAML.
	Spec string `json:"spec"`
	// Workers is how many workers train the job (default 1).
	Workers int `json:"workers,omitempty"`
	// ParameterServers is how many parameter servers split its parameters
	// (default 1).
	ParameterServers int `json:"parameter_servers,omitempty"`
	// MaxSteps, when positive, ends the job after this many steps; the
	// learning-rate schedule still spans the spec's epochs (as `maas train
	// --max-steps`).
	MaxSteps int64 `json:"max_steps,omitempty"`
	// InitWeights, when set, is a safetensors file holding every parameter
	// of the model (the format `maas train` writes) to start from instead of
	// the seed's initialisation. Base64 in JSON.
	InitWeights []byte `json:"init_weights,omitempty"`
}

// SubmitResponse names the new job.
type SubmitResponse struct {
	ID string `json:"id"`
}

// Error is the body of every 4xx and 5xx answer.
type Error struct {
	Error string `json:"error"`
	// Field names the job spec field at fault, when there is one.
	Field string `json:"field,omitempty"`
	// Reason says why a call was refused (401, 403): one of the Reason
	// constants.
	Reason string `json:"reason,omitempty"`
	// Need is the role the call needs and Role the role of the token
	// that was sent (403).
	Need string `json:"need,omitempty"`
	Role string `json:"role,omitempty"`
}

// Why a coordinator with API tokens refuses a call (Error.Reason).
const (
	ReasonNoToken      = "no_token"      // 401: no "Authorization: Bearer TOKEN"
	ReasonUnknownToken = "unknown_token" // 401: not a token of the cluster
	ReasonExpiredToken = "expired_token" // 401: past its expiry
	ReasonForbidden    = "forbidden"     // 403: the token's role is too low
	// ReasonNoLeader (503): the coordinator knows no leader, so it did
	// nothing with the call: an election is under way, or no majority of
	// the coordinators is up. Calling again is safe.
	ReasonNoLeader = "no_leader"
)

// JobStatus is a job as the coordinator knows it.
type JobStatus struct {
	ID               string    `json:"id"`
	Name             string    `json:"name"`
	State            string    `json:"state"`
	Reason           string    `json:"reason,omitempty"`
	Submitted        time.Time `json:"submitted"`
	Started          time.Time `json:"started,omitzero"`
	Finished         time.Time `json:"finished,omitzero"`
	Workers          int       `json:"workers"`
	ParameterServers int       `json:"parameter_servers"`
	// Epoch is the membership epoch; Members the workers in rank order.
	Epoch   uint64   `json:"epoch"`
	Members []string `json:"members,omitempty"`
	Servers []string `json:"servers,omitempty"`
	// Step is the latest finished step (in memory on the leader);
	// CommittedStep the last committed checkpoint.
	Step          int64 `json:"step"`
	CommittedStep int64 `json:"committed_step"`
	TotalSteps    int64 `json:"total_steps"`
	NumParams     int   `json:"num_params"`
	StepsPerEpoch int64 `json:"steps_per_epoch"`
	Epochs        int   `json:"epochs"`
	// Loss and Accuracy are running means over the current training epoch
	// (the last finished epoch's until the next one's first step).
	Loss float64 `json:"loss"`
	// LossNotFinite is set (and Loss is 0) when the running loss is NaN or
	// infinite, which JSON cannot carry.
	LossNotFinite bool    `json:"loss_not_finite,omitempty"`
	Accuracy      float64 `json:"accuracy"`
	SamplesPerSec float64 `json:"samples_per_sec"`
	// StepTime is the mean time of a step's phases on a worker.
	StepTime *StepTime     `json:"step_time,omitempty"`
	Model    *ModelVersion `json:"model,omitempty"`
	// Memberships are the job's membership epochs, oldest first: who
	// trained it from which step. The job's events say why each began.
	Memberships []Membership `json:"memberships,omitempty"`
	// Spec is the job spec (canonical YAML), in GET /v1/jobs/{id} only.
	Spec string `json:"spec,omitempty"`
}

// Membership is one membership epoch of a job: its workers in rank order
// and its parameter servers, from step FromStep on. Reset: the servers
// restarted from the last checkpoint (or the seed's θ₀).
type Membership struct {
	Epoch    uint64   `json:"epoch"`
	FromStep int64    `json:"from_step"`
	Members  []string `json:"members"`
	Servers  []string `json:"servers"`
	Reset    bool     `json:"reset,omitempty"`
}

// StepTime splits a worker's step: forward and backward (compute),
// pushing every gradient chunk until acknowledged (push), and waiting for
// θ_{t+1}: the servers' aggregation and update, then the fan-out or a pull
// (wait).
type StepTime struct {
	ComputeMS float64 `json:"compute_ms"`
	PushMS    float64 `json:"push_ms"`
	WaitMS    float64 `json:"wait_ms"`
}

// ModelVersion is one published version of a model.
type ModelVersion struct {
	Name    string    `json:"name"`
	Version int       `json:"version"`
	Job     string    `json:"job"`
	Created time.Time `json:"created"`
	// Bucket and Prefix locate the artifact in the Object Store: the files
	// Prefix + "model.safetensors" and Prefix + "model.yaml".
	Bucket  string             `json:"bucket"`
	Prefix  string             `json:"prefix"`
	Files   []string           `json:"files"`
	Metrics map[string]float64 `json:"metrics,omitempty"`
}

// LogEntry is one event of a job.
type LogEntry struct {
	Seq     int64     `json:"seq"`
	Time    time.Time `json:"time"`
	Message string    `json:"message"`
}

// JobMetrics are a job's training curves, from its history: a point every
// few steps (at most 2,000 a job, evenly spaced) and one a finished epoch.
type JobMetrics struct {
	Points []MetricPoint  `json:"points"`
	Epochs []EpochMetrics `json:"epochs"`
}

// MetricPoint is a job's training metrics over the steps since the point
// before, up to Step.
type MetricPoint struct {
	Step          int64     `json:"step"`
	Epoch         int64     `json:"epoch"`
	Time          time.Time `json:"time"`
	Loss          float64   `json:"loss"`     // mean training loss
	Accuracy      float64   `json:"accuracy"` // share of training samples classified right
	SamplesPerSec float64   `json:"samples_per_sec"`
	StepMS        float64   `json:"step_ms"`
	ComputeMS     float64   `json:"compute_ms"` // the workers' mean step split
	PushMS        float64   `json:"push_ms"`
	WaitMS        float64   `json:"wait_ms"`
	LR            float64   `json:"lr"` // the learning rate at Step
}

// EpochMetrics are a finished epoch's training loss and accuracy.
type EpochMetrics struct {
	Epoch         int64     `json:"epoch"`
	Step          int64     `json:"step"` // its last step
	Time          time.Time `json:"time"`
	TrainLoss     float64   `json:"train_loss"`
	TrainAccuracy float64   `json:"train_accuracy"`
	Samples       int       `json:"samples"`
	// Eval is the model evaluated on a held-out set at the epoch's end,
	// where there is one.
	Eval *EvalMetrics `json:"eval,omitempty"`
}

// EvalMetrics are a model's loss and accuracy on a held-out set.
type EvalMetrics struct {
	Set      string  `json:"set"` // e.g. mnist-test
	Loss     float64 `json:"loss"`
	Accuracy float64 `json:"accuracy"`
}

// LogPage is the entries after a sequence number, and whether the job has
// finished (no more entries will come).
type LogPage struct {
	Entries []LogEntry `json:"entries"`
	Done    bool       `json:"done"`
}

// ClusterStatus lists the coordinator nodes and the registered members.
type ClusterStatus struct {
	Leader  string   `json:"leader"`
	Nodes   []Node   `json:"nodes"`
	Servers []Member `json:"parameter_servers"`
	Workers []Member `json:"workers"`
	// NATS is the NATS server the answering coordinator is connected to,
	// and the others its connection knows of.
	NATS *NATSView `json:"nats,omitempty"`
}

// Node is one coordinator. State, Term and AppliedIndex are as the node
// itself reports them (GET /v1/raft/state); Error says why it could not
// be asked.
type Node struct {
	ID           string `json:"id"`
	RaftAddr     string `json:"raft_addr"`
	HTTPAddr     string `json:"http_addr"`
	Leader       bool   `json:"leader"`
	Voter        bool   `json:"voter"`
	State        string `json:"state,omitempty"` // Leader, Follower, Candidate
	Term         uint64 `json:"term,omitempty"`
	AppliedIndex uint64 `json:"applied_index,omitempty"`
	Error        string `json:"error,omitempty"`
}

// RaftState is one coordinator's own view of Raft (GET /v1/raft/state):
// the index of the last log entry its FSM applied and a digest of its
// state there (nodes at the same index agree on it).
type RaftState struct {
	ID           string `json:"id"`
	State        string `json:"state"`
	Term         uint64 `json:"term"`
	AppliedIndex uint64 `json:"index"`
	Digest       string `json:"digest"`
}

// NATSView is a coordinator's NATS connection: the server it is on and
// every server its connection knows (the cluster's, as gossiped).
type NATSView struct {
	Connected  bool     `json:"connected"`
	URL        string   `json:"url,omitempty"`
	ServerName string   `json:"server_name,omitempty"`
	Version    string   `json:"version,omitempty"`
	Cluster    string   `json:"cluster,omitempty"`
	JetStream  bool     `json:"jetstream"`
	Known      []string `json:"known"`
}

// Member is a registered worker or parameter server.
type Member struct {
	ID       string    `json:"id"`
	Kind     string    `json:"kind"` // "worker" or "paramserver"
	Host     string    `json:"host"`
	Threads  int       `json:"threads,omitempty"`
	Device   string    `json:"device,omitempty"` // e.g. "cpu (go+avx2, 8 threads)", "NVIDIA H200 (cuda:0)"
	State    string    `json:"state"`            // "idle", "busy" or "dead"
	Job      string    `json:"job,omitempty"`
	LastSeen time.Time `json:"last_seen"`
}

// JoinRequest asks the leader to add a coordinator to the Raft cluster.
type JoinRequest struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raft_addr"`
	HTTPAddr string `json:"http_addr"`
}

// RemoveRequest asks the leader to take a coordinator out of the Raft
// configuration (POST /v1/raft/remove).
type RemoveRequest struct {
	ID string `json:"id"`
}
