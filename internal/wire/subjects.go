package wire

import (
	"fmt"
	"strings"
)

// Every NATS subject maas uses. Job-scoped subjects are
// maas.<area>.<job>[.<server>]; job ids are restricted to characters that
// are valid in a subject token (see ValidJobID).
const (
	// SubjModelPublished: a new model version is in the model index (publish).
	SubjModelPublished = "maas.model.published"
)

// The JetStream Object Store buckets maas uses.
const (
	// ModelBucket holds published models: a version's files under its
	// prefix (worker rank 0 writes them, serve and `maas model pull` read).
	ModelBucket = "maas-models"
	// CheckpointBucket holds parameter-server checkpoints and the initial
	// weights jobs start from (InitObject).
	CheckpointBucket = "maas-checkpoints"
	// DataBucket holds datasets pushed with `maas data push`.
	DataBucket = "maas-data"
)

// InitObject is the name, in CheckpointBucket, of the initial weights (a
// safetensors file) whose SHA-256 is digest (hex).
func InitObject(digest string) string { return "init/" + digest + ".safetensors" }

// The control subjects a member sends on to the coordinator leader end in
// the member's id, so that a secured cluster's NATS permissions let a
// member speak only as itself; the coordinator subscribes to each with
// the id "*" and drops a message whose id is not its subject's (see
// MemberOf). Member ids are, like job ids, valid subject tokens.

// RegisterSubject: a worker or parameter server registers with the
// coordinator leader (request/reply).
func RegisterSubject(id string) string { return "maas.ctl.register." + id }

// HeartbeatSubject: a member announces it is alive (publish).
func HeartbeatSubject(id string) string { return "maas.ctl.heartbeat." + id }

// ReportSubject: a parameter server reports finished steps, missing
// members and checkpoints to the coordinator leader (publish).
func ReportSubject(id string) string { return "maas.ctl.report." + id }

// ProgressSubject: a worker publishes each finished step's figures
// (publish).
func ProgressSubject(id string) string { return "maas.ctl.progress." + id }

// DoneSubject: a member reports that its part of a job ended, with the
// model artifact (worker rank 0) or the reason it failed (request/reply).
func DoneSubject(id string) string { return "maas.ctl.done." + id }

// MemberOf is the member id a per-member subject names: its last token.
func MemberOf(subject string) string { return subject[strings.LastIndexByte(subject, '.')+1:] }

// GradSubject is where worker pushes gradient chunks of job to parameter
// server srv (request/reply: the server acknowledges each chunk). The
// worker's id is the last token, so that a secured cluster's NATS
// permissions let a worker push only as itself.
func GradSubject(job string, srv int, worker string) string {
	return fmt.Sprintf("maas.grad.%s.%d.%s", job, srv, worker)
}

// GradSubjects is what server srv of job subscribes to: every worker's
// GradSubject.
func GradSubjects(job string, srv int) string { return fmt.Sprintf("maas.grad.%s.%d.*", job, srv) }

// AggSubject is where worker pushes a gradient chunk to its host's
// aggregator (request/reply): maas.agg.<job>.<aggregator>.<worker>.
func AggSubject(job, aggregator, worker string) string {
	return "maas.agg." + job + "." + aggregator + "." + worker
}

// AggSubjects are the AggSubjects an aggregator takes for job.
func AggSubjects(job, aggregator string) string { return "maas.agg." + job + "." + aggregator + ".*" }

// WorkerAggSubjects are the AggSubjects worker may push on, and
// AggregatorSubjects those it may take as an aggregator (its NATS
// permissions).
func WorkerAggSubjects(worker string) string  { return "maas.agg.*.*." + worker }
func AggregatorSubjects(worker string) string { return "maas.agg.*." + worker + ".*" }

// WorkerGradSubjects are the GradSubjects of every job and server that
// worker may push on (its NATS publish permission).
func WorkerGradSubjects(worker string) string { return "maas.grad.*.*." + worker }

// AnyGradSubject matches every GradSubject (a parameter server's subscribe
// permission).
const AnyGradSubject = "maas.grad.>"

// AnyPullSubject matches every PullSubject.
const AnyPullSubject = "maas.pull.*.*"

// ParamSubject is where parameter servers publish each new parameter chunk
// of job once; NATS fans it out to every worker.
func ParamSubject(job string) string { return "maas.param." + job }

// PullSubject is where a worker asks parameter server srv for a parameter
// chunk it missed (request/reply).
func PullSubject(job string, srv int) string { return fmt.Sprintf("maas.pull.%s.%d", job, srv) }

// AssignSubject is where the coordinator publishes a job's membership
// epochs; members also request the current one there.
func AssignSubject(job string) string { return "maas.assign." + job }

// ValidJobID reports whether id can name a job: 1 to 64 characters of
// letters, digits, '-' and '_' (no dots or wildcards, which NATS subjects
// reserve).
func ValidJobID(id string) bool {
	if len(id) == 0 || len(id) > 64 {
		return false
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}
