package wire

import "fmt"

// Every NATS subject maas uses. Job-scoped subjects are
// maas.<area>.<job>[.<server>]; job ids are restricted to characters that
// are valid in a subject token (see ValidJobID).
const (
	// SubjRegister: workers and parameter servers register with the
	// coordinator leader (request/reply).
	SubjRegister = "maas.ctl.register"
	// SubjHeartbeat: workers and servers announce they are alive (publish).
	SubjHeartbeat = "maas.ctl.heartbeat"
	// SubjReport: parameter servers report finished steps, missing members
	// and checkpoints to the coordinator leader (publish).
	SubjReport = "maas.ctl.report"
	// SubjModelPublished: a new model version is in the model index (publish).
	SubjModelPublished = "maas.model.published"
)

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
