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
//	paramserver  maas.ctl.register.<id>,                maas.ctl.member.<id>, maas.grad.>,
//	             maas.ctl.heartbeat.<id>,               maas.pull.*.*, maas.assign.*, _INBOX.>
//	             maas.ctl.report.<id>
//	             maas.param.* (new parameters)
//	             checkpoints: read, write
//	worker       maas.ctl.register.<id>,                maas.ctl.member.<id>, maas.param.*,
//	             maas.ctl.heartbeat.<id>,               maas.assign.*, _INBOX.>
//	             maas.ctl.progress.<id>,
//	             maas.ctl.done.<id>
//	             maas.grad.*.*.<id> (its own gradients)
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
			bucketWrite(wire.ModelBucket), bucketWrite(wire.CheckpointBucket), bucketRead(wire.DataBucket))
		p.Subscribe = []string{wire.RegisterSubject("*"), wire.HeartbeatSubject("*"), wire.ProgressSubject("*"),
			wire.ReportSubject("*"), wire.DoneSubject("*"), inboxes}
	case KindParamServer:
		p.Publish = join([]string{wire.RegisterSubject(id), wire.HeartbeatSubject(id), wire.ReportSubject(id), wire.ParamSubject("*")},
			bucketWrite(wire.CheckpointBucket))
		p.Subscribe = []string{member, wire.AnyGradSubject, wire.AnyPullSubject, wire.AssignSubject("*"), inboxes}
	case KindWorker:
		p.Publish = join([]string{wire.RegisterSubject(id), wire.HeartbeatSubject(id), wire.ProgressSubject(id), wire.DoneSubject(id),
			wire.WorkerGradSubjects(id), wire.AnyPullSubject},
			bucketWrite(wire.ModelBucket), bucketRead(wire.DataBucket))
		p.Subscribe = []string{member, wire.ParamSubject("*"), wire.AssignSubject("*"), inboxes}
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

// bucketRead are the subjects a client publishes to read objects of an
// Object Store bucket: the stream's info, its last message by subject
// (object metadata), an ordered consumer over an object's chunks (create,
// look up, delete it) and that consumer's flow control. The chunks
// themselves come to the client's inbox.
func bucketRead(bucket string) []string {
	stream := "OBJ_" + bucket
	return []string{
		"$JS.API.STREAM.INFO." + stream,
		"$JS.API.STREAM.MSG.GET." + stream,
		"$JS.API.DIRECT.GET." + stream,
		"$JS.API.DIRECT.GET." + stream + ".>",
		"$JS.API.CONSUMER.CREATE." + stream,
		"$JS.API.CONSUMER.CREATE." + stream + ".>",
		"$JS.API.CONSUMER.INFO." + stream + ".*",
		"$JS.API.CONSUMER.DELETE." + stream + ".*",
		"$JS.FC." + stream + ".>",
	}
}

// bucketWrite are bucketRead plus the subjects to create or update the
// bucket, publish its chunks and metadata, and purge the chunks of a
// replaced or deleted object.
func bucketWrite(bucket string) []string {
	stream := "OBJ_" + bucket
	return append(bucketRead(bucket),
		"$JS.API.STREAM.CREATE."+stream,
		"$JS.API.STREAM.UPDATE."+stream,
		"$JS.API.STREAM.PURGE."+stream,
		"$O."+bucket+".>",
	)
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
		perms, ok := ProcessPermissions(u.Process.Kind, u.Process.ID)
		about := fmt.Sprintf("%s: %s on %s", u.Process.ID, u.Process.Kind, u.Process.Host)
		if u.Operator {
			perms, ok, about = OperatorPermissions(), true, "operator: maas data push, ls and rm ("+OperatorSeedFile+")"
		}
		if !ok {
			continue
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
