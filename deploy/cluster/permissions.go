package cluster

import (
	"fmt"
	"io"
	"strings"

	"github.com/maas-ml/maas/internal/wire"
)

// OperatorSeedFile is the NATS user nkey seed of the operator: the person
// who runs `maas data push`, `ls` and `rm`. It stays in the secrets
// directory; no host is given it.
const OperatorSeedFile = "operator.nk"

// OperatorPermissions are what the operator's NATS user may do: write the
// data bucket (push and remove datasets) and read the model bucket.
func OperatorPermissions() Permissions {
	return Permissions{Publish: join(bucketWrite(wire.DataBucket), bucketRead(wire.ModelBucket)), Subscribe: []string{inboxes}}
}

// inboxes is where NATS delivers the replies to a client's requests.
const inboxes = "_INBOX.>"

// Permissions are the subjects one NATS user may publish and subscribe
// to; anything not listed is refused by the NATS server.
type Permissions struct {
	Publish   []string
	Subscribe []string
	// AllowResponses lets the user publish one reply to each request it
	// receives, whatever the reply subject: no one needs the right to
	// publish on _INBOX.>, so no one can forge another's replies.
	AllowResponses bool
}

// ProcessPermissions is the table of what each maas process may do on
// NATS; ok is false for a NATS server, which is no NATS user. id is the
// process id (Process.ID). `*` matches one subject token, `>` one or more.
//
//	role         publishes                              subscribes to
//	coordinator  maas.ctl.member.* (assignments, stops) maas.ctl.register.*, maas.ctl.heartbeat.*,
//	             maas.assign.* (membership epochs)      maas.ctl.progress.*, maas.ctl.report.*,
//	             maas.model.published                   maas.ctl.done.*, _INBOX.>
//	             models, checkpoints: read, write
//	             data: read
//	             job history: maas.history.> and its stream
//	paramserver  maas.ctl.register.<id>,                maas.ctl.member.<id>, maas.grad.>,
//	             maas.ctl.heartbeat.<id>,               maas.pull.*.*, maas.assign.*, _INBOX.>
//	             maas.ctl.report.<id>
//	             maas.param.* (new parameters)
//	             checkpoints: read, write
//	worker       maas.ctl.register.<id>,                maas.ctl.member.<id>, maas.param.*,
//	             maas.ctl.heartbeat.<id>,               maas.assign.*, maas.agg.*.<id>.*
//	             maas.ctl.progress.<id>,                (as its host's aggregator), _INBOX.>
//	             maas.ctl.done.<id>
//	             maas.grad.*.*.<id> (its own gradients)
//	             maas.agg.*.*.<id> (to its aggregator)
//	             maas.pull.*.* (parameter requests)
//	             models: read, write (rank 0 uploads)
//	             data: read (pushed datasets)
//	serve        models: read                           maas.model.published, _INBOX.>
//	(operator)   data: read, write; models: read        _INBOX.>
//
// A member's control subjects end in its id, so it speaks to the
// coordinator only as itself: a process started with another member's
// --id cannot register, heartbeat or report for it (and member.Run exits,
// refused its own subjects).
//
// Coordinators, parameter servers and workers answer the requests they
// receive (AllowResponses: the registration and done acknowledgements,
// gradient acknowledgements and pulled chunks, assignment acknowledgements);
// serve answers none, and no one may publish on _INBOX.> otherwise. So a
// worker can neither publish parameters, assignments or another worker's
// gradients nor hear another member's assignments; only coordinators
// assign, and only parameter servers publish parameters.
//
// Read and write on a bucket are the JetStream API and Object Store
// subjects of that bucket alone (bucketRead, bucketWrite); deleting an
// object is a write. No one may delete a bucket. The operator, who pushes
// datasets, is no process: OperatorPermissions.
func ProcessPermissions(kind Kind, id string) (p Permissions, ok bool) {
	member := wire.MemberSubject(id)
	switch kind {
	case KindCoordinator:
		p.Publish = join([]string{wire.MemberSubject("*"), wire.AssignSubject("*"), wire.SubjModelPublished},
			bucketWrite(wire.ModelBucket), bucketWrite(wire.CheckpointBucket), bucketRead(wire.DataBucket), historyWrite())
		p.Subscribe = []string{wire.RegisterSubject("*"), wire.HeartbeatSubject("*"), wire.ProgressSubject("*"),
			wire.ReportSubject("*"), wire.DoneSubject("*"), inboxes}
	case KindParamServer:
		p.Publish = join([]string{wire.RegisterSubject(id), wire.HeartbeatSubject(id), wire.ReportSubject(id), wire.ParamSubject("*")},
			bucketWrite(wire.CheckpointBucket))
		p.Subscribe = []string{member, wire.AnyGradSubject, wire.AnyPullSubject, wire.AssignSubject("*"), inboxes}
	case KindWorker:
		p.Publish = join([]string{wire.RegisterSubject(id), wire.HeartbeatSubject(id), wire.ProgressSubject(id), wire.DoneSubject(id),
			wire.WorkerGradSubjects(id), wire.WorkerAggSubjects(id), wire.AnyPullSubject},
			bucketWrite(wire.ModelBucket), bucketRead(wire.DataBucket))
		p.Subscribe = []string{member, wire.ParamSubject("*"), wire.AssignSubject("*"), wire.AggregatorSubjects(id), inboxes}
	case KindServe:
		p.Publish = bucketRead(wire.ModelBucket)
		p.Subscribe = []string{wire.SubjModelPublished, inboxes}
		return p, true
	default:
		return Permissions{}, false
	}
	p.AllowResponses = true
	return p, true
}

// LeafPermissions are what the leaf NATS server on host h may do as a
// user of the full members: carry its processes' messages into the cluster
// and theirs out, so the union of what the host's processes may publish
// and subscribe to, and the replies to requests either way (_INBOX.>, in
// both lists: the leaf connection relays them for its clients, each of
// which its own server still holds to its own permissions).
//
// A full member sends a leaf the interest of a subscription whose subject
// covers one the leaf may publish; with nats-server 2.15 that match does
// not look below a '*' of the leaf's list when the subscription ends in
// '>', so subscriptions that leaf hosts must reach name their tokens up to
// the member id (a parameter server's wire.GradSubjects, not
// wire.AnyGradSubject). TestSecuredLeaf checks a push through a leaf.
func (f *File) LeafPermissions(h *Host) Permissions {
	var pub, sub []string
	seen := map[string]bool{}
	add := func(list *[]string, subjects []string, kind string) {
		for _, s := range subjects {
			if !seen[kind+s] {
				seen[kind+s] = true
				*list = append(*list, s)
			}
		}
	}
	for _, p := range f.hostProcesses(h) {
		if pp, ok := ProcessPermissions(p.Kind, p.ID); ok {
			add(&pub, pp.Publish, "pub:")
			add(&sub, pp.Subscribe, "sub:")
		}
	}
	add(&pub, []string{inboxes}, "pub:")
	add(&sub, []string{inboxes}, "sub:")
	return Permissions{Publish: pub, Subscribe: sub}
}

// userPermissions are process p's permissions as a NATS user; ok is false
// for a process that is no user (a full NATS member).
func (f *File) userPermissions(p Process) (Permissions, bool) {
	if p.Kind == KindNATS && p.Leaf {
		return f.LeafPermissions(f.host(p.Host)), true
	}
	return ProcessPermissions(p.Kind, p.ID)
}

// jsAPI are the JetStream API subjects of api (STREAM.INFO.OBJ_x...):
// in maas's domain (wire.JetStream), which its clients publish on and a
// leaf server relays, and the server's own, which a storing server maps
// the domain's to before it checks them.
func jsAPI(api ...string) []string {
	var s []string
	for _, a := range api {
		s = append(s, "$JS."+wire.JetStreamDomain+".API."+a, "$JS.API."+a)
	}
	return s
}

// streamRead are the subjects a client publishes to read a stream: its
// info, its last message by subject, an ordered consumer over it (create,
// look up, delete it) and that consumer's flow control. The messages
// themselves come to the client's inbox.
func streamRead(stream string) []string {
	return append(jsAPI(
		"STREAM.INFO."+stream,
		"STREAM.MSG.GET."+stream,
		"DIRECT.GET."+stream,
		"DIRECT.GET."+stream+".>",
		"CONSUMER.CREATE."+stream,
		"CONSUMER.CREATE."+stream+".>",
		"CONSUMER.INFO."+stream+".*",
		"CONSUMER.DELETE."+stream+".*",
	), "$JS.FC."+stream+".>")
}

// bucketRead are the subjects a client publishes to read objects of an
// Object Store bucket: its stream's (object metadata by subject, an
// object's chunks through an ordered consumer).
func bucketRead(bucket string) []string { return streamRead("OBJ_" + bucket) }

// bucketWrite are bucketRead plus the subjects to create or update the
// bucket, publish its chunks and metadata, and purge the chunks of a
// replaced or deleted object.
func bucketWrite(bucket string) []string {
	stream := "OBJ_" + bucket
	return append(append(bucketRead(bucket),
		jsAPI("STREAM.CREATE."+stream, "STREAM.UPDATE."+stream, "STREAM.PURGE."+stream)...),
		"$O."+bucket+".>")
}

// historyWrite are the subjects a coordinator publishes to keep the job
// history: create or update its stream, store records (acknowledged) and
// read them back (streamRead, and fetching from the ordered consumer).
func historyWrite() []string {
	stream := wire.HistoryStream
	return append(append(streamRead(stream),
		jsAPI("STREAM.CREATE."+stream, "STREAM.UPDATE."+stream, "CONSUMER.MSG.NEXT."+stream+".*")...),
		wire.HistorySubjects)
}

func join(lists ...[]string) []string {
	var all []string
	for _, l := range lists {
		all = append(all, l...)
	}
	return all
}

// natsUser is one process's NATS identity, or the operator's.
type natsUser struct {
	Process   Process
	PublicKey string
	// Perms are the process's permissions (File.userPermissions).
	Perms Permissions
	// Operator marks the operator's user (OperatorPermissions); Process
	// is then empty.
	Operator bool
}

// writeNATSUsers writes the NATS server authorization block that lets
// every user in, each with its role's permissions. The NATS configuration
// of each server includes it.
func writeNATSUsers(w io.Writer, cluster string, users []natsUser) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# NATS users of maas cluster %q, one per process, written by `maas cluster init`.\n", cluster)
	fmt.Fprintf(&b, "# Include this file in every NATS server's configuration.\n")
	fmt.Fprintf(&b, "authorization {\n  users = [\n")
	for _, u := range users {
		perms, about := u.Perms, fmt.Sprintf("%s: %s on %s", u.Process.ID, u.Process.Kind, u.Process.Host)
		if u.Process.Leaf {
			about += " (leaf connection)"
		}
		if u.Operator {
			perms, about = OperatorPermissions(), "operator: maas data push, ls and rm ("+OperatorSeedFile+")"
		}
		fmt.Fprintf(&b, "    # %s\n", about)
		fmt.Fprintf(&b, "    {\n      nkey: %s\n      permissions: {\n", quote(u.PublicKey))
		fmt.Fprintf(&b, "        publish: { allow: %s }\n", quoteList(perms.Publish, "        "))
		fmt.Fprintf(&b, "        subscribe: { allow: %s }\n", quoteList(perms.Subscribe, "        "))
		if perms.AllowResponses {
			fmt.Fprintf(&b, "        allow_responses: true\n")
		}
		fmt.Fprintf(&b, "      }\n    }\n")
	}
	fmt.Fprintf(&b, "  ]\n}\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// quote writes s as a NATS configuration string. Subjects and public keys
// hold no quotes or backslashes (ids are letters, digits, '-' and '_').
func quote(s string) string { return `"` + s + `"` }

// quoteList writes l as a NATS configuration array, one element a line
// indented by indent plus two spaces.
func quoteList(l []string, indent string) string {
	var b strings.Builder
	b.WriteString("[\n")
	for _, s := range l {
		b.WriteString(indent + "  " + quote(s) + ",\n")
	}
	b.WriteString(indent + "]")
	return b.String()
}
