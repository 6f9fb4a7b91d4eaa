package wire

// A job's history: its events and its training metrics, kept in the
// JetStream stream HistoryStream so that they outlive the coordinator
// leader that wrote them. Each job has three subjects in it, one message
// a record (msgpack):
//
//	maas.history.<job>.events   HistoryEvent: state changes, membership
//	                            epochs, checkpoints, failures and why
//	maas.history.<job>.points   HistoryPoint: training loss and accuracy,
//	                            samples/s, the step's time and its split,
//	                            the learning rate; at most MaxHistoryPoints
//	                            a job, every HistoryEvery steps
//	maas.history.<job>.epochs   HistoryEpoch: each epoch's training loss
//	                            and accuracy
//	maas.history.<job>.evals    HistoryEval: the model after each epoch on
//	                            a held-out set (the test split)
//
// A record's place in the stream (its stream sequence) orders it and is
// what a reader asks for the records after.

// HistoryStream is the JetStream stream of every job's history.
const HistoryStream = "MAAS_HISTORY"

// HistorySubjects is the stream's subject filter.
const HistorySubjects = "maas.history.>"

// History record kinds: the last token of their subject.
const (
	HistoryEvents = "events"
	HistoryPoints = "points"
	HistoryEpochs = "epochs"
	HistoryEvals  = "evals"
)

// HistorySubject is where job's records of kind go.
func HistorySubject(job, kind string) string { return "maas.history." + job + "." + kind }

// MaxHistoryPoints bounds a job's metric points.
const MaxHistoryPoints = 2000

// HistoryEvery is the step interval of a job of total steps' metric
// points: every step up to MaxHistoryPoints steps, then evenly spaced so
// that there are at most MaxHistoryPoints.
func HistoryEvery(total int64) int64 {
	return max(1, (total+MaxHistoryPoints-1)/MaxHistoryPoints)
}

// HistoryEvent is one event of a job.
type HistoryEvent struct {
	V       int    `msgpack:"v"`
	Time    int64  `msgpack:"time"` // Unix nanoseconds
	Message string `msgpack:"msg"`
}

func (m *HistoryEvent) version() int { return m.V }

// HistoryPoint is a job's training metrics over the steps since its last
// point, up to Step, as the workers reported them.
type HistoryPoint struct {
	V     int   `msgpack:"v"`
	Step  int64 `msgpack:"t"`
	Epoch int64 `msgpack:"e"`
	Time  int64 `msgpack:"time"` // Unix nanoseconds
	// Loss and Accuracy are the mean training loss and the share of the
	// training samples classified right, over the samples since the last
	// point (Accuracy 0 for a model without classes).
	Loss     float64 `msgpack:"loss"`
	Accuracy float64 `msgpack:"acc"`
	// SamplesPerSec is the samples trained since the last point over the
	// time since it; StepMS the mean step time over those steps.
	SamplesPerSec float64 `msgpack:"sps"`
	StepMS        float64 `msgpack:"step_ms"`
	// ComputeMS, PushMS and WaitMS are the workers' mean step split.
	ComputeMS float64 `msgpack:"compute_ms"`
	PushMS    float64 `msgpack:"push_ms"`
	WaitMS    float64 `msgpack:"wait_ms"`
	// LR is the learning rate of the step, from the job's schedule.
	LR float64 `msgpack:"lr"`
}

func (m *HistoryPoint) version() int { return m.V }

// HistoryEpoch is one finished epoch of a job.
type HistoryEpoch struct {
	V             int     `msgpack:"v"`
	Epoch         int64   `msgpack:"e"`
	Step          int64   `msgpack:"t"` // the epoch's last step
	Time          int64   `msgpack:"time"`
	TrainLoss     float64 `msgpack:"train_loss"`
	TrainAccuracy float64 `msgpack:"train_acc"`
	Samples       int     `msgpack:"n"`
}

func (m *HistoryEpoch) version() int { return m.V }

// HistoryEval is the model after an epoch evaluated on a held-out set.
type HistoryEval struct {
	V        int     `msgpack:"v"`
	Epoch    int64   `msgpack:"e"`
	Step     int64   `msgpack:"t"`
	Time     int64   `msgpack:"time"`
	Set      string  `msgpack:"set"`
	Loss     float64 `msgpack:"loss"`
	Accuracy float64 `msgpack:"acc"`
}

func (m *HistoryEval) version() int { return m.V }
