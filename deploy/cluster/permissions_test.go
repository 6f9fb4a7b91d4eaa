package cluster

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/maas-ml/maas/internal/wire"
)

// matchSubject reports whether subject matches pattern as NATS matches
// them: `*` is any one token, `>` one or more trailing tokens.
func matchSubject(pattern, subject string) bool {
	p, s := strings.Split(pattern, "."), strings.Split(subject, ".")
	for i, tok := range p {
		if tok == ">" {
			return i < len(s)
		}
		if i >= len(s) || tok != "*" && tok != s[i] {
			return false
		}
	}
	return len(p) == len(s)
}

func allowed(patterns []string, subject string) bool {
	for _, p := range patterns {
		if matchSubject(p, subject) {
			return true
		}
	}
	return false
}

func TestMatchSubject(t *testing.T) {
	for _, c := range []struct {
		pattern, subject string
		want             bool
	}{
		{"maas.param.*", "maas.param.j", true},
		{"maas.param.*", "maas.param.j.x", false},
		{"maas.param.*", "maas.param", false},
		{"maas.grad.>", "maas.grad.j.0.w", true},
		{"maas.grad.>", "maas.grad", false},
		{"maas.grad.*.*.w1", "maas.grad.j.0.w1", true},
		{"maas.grad.*.*.w1", "maas.grad.j.0.w2", false},
		{"maas.ctl.done.*", "maas.ctl.done.w1", true},
		{"maas.ctl.done.w1", "maas.ctl.done.w2", false},
	} {
		if got := matchSubject(c.pattern, c.subject); got != c.want {
			t.Errorf("matchSubject(%q, %q) = %v", c.pattern, c.subject, got)
		}
	}
}

func TestProcessPermissionsTable(t *testing.T) {
	const w1, w2, ps, coord = "node1-worker-1", "node3-worker-1", "node1-paramserver-1", "node1-coordinator"
	grad := func(id string) string { return wire.GradSubject("j", 0, id) }
	type check struct {
		subject string
		want    bool
	}
	for _, c := range []struct {
		kind      Kind
		id        string
		publish   []check
		subscribe []check
	}{
		{KindWorker, w1,
			[]check{{grad(w1), true}, {grad(w2), false}, {"maas.grad.j.0", false},
				{wire.ParamSubject("j"), false}, {wire.AssignSubject("j"), false},
				{wire.MemberSubject(w2), false}, {wire.MemberSubject(w1), false},
				{wire.PullSubject("j", 1), true}, {wire.RegisterSubject(w1), true}, {wire.HeartbeatSubject(w1), true},
				{wire.ProgressSubject(w1), true}, {wire.DoneSubject(w1), true}, {wire.ReportSubject(w1), false},
				{wire.RegisterSubject(w2), false}, {wire.HeartbeatSubject(w2), false}, {wire.ProgressSubject(w2), false},
				{wire.DoneSubject(w2), false}, {wire.HeartbeatSubject("*"), false}, {"maas.ctl.heartbeat", false},
				{wire.SubjModelPublished, false}, {"_INBOX.abc", false},
				{"$O.maas-models.C.x", true}, {"$O.maas-checkpoints.C.x", false},
				{"$JS.maas.API.STREAM.DELETE.OBJ_maas-models", false},
				{"$JS.maas.API.STREAM.INFO.OBJ_maas-data", true}, {"$JS.maas.API.CONSUMER.CREATE.OBJ_maas-data", true},
				{"$O.maas-data.C.x", false}, {"$JS.maas.API.STREAM.CREATE.OBJ_maas-data", false}},
			[]check{{wire.MemberSubject(w1), true}, {wire.MemberSubject(w2), false}, {wire.ParamSubject("j"), true},
				{wire.AssignSubject("j"), true}, {grad(w2), false}, {wire.RegisterSubject(w1), false},
				{wire.HeartbeatSubject(w2), false}, {"_INBOX.x.y", true}}},
		{KindParamServer, ps,
			[]check{{wire.ParamSubject("j"), true}, {wire.ReportSubject(ps), true}, {wire.RegisterSubject(ps), true},
				{wire.HeartbeatSubject(ps), true}, {wire.ReportSubject(w1), false}, {wire.HeartbeatSubject(w1), false},
				{wire.ProgressSubject(ps), false},
				{wire.AssignSubject("j"), false}, {wire.MemberSubject(w1), false}, {grad(ps), false},
				{"$O.maas-checkpoints.C.x", true}, {"$O.maas-models.C.x", false},
				{"$JS.maas.API.STREAM.INFO.OBJ_maas-data", false}},
			[]check{{grad(w1), true}, {wire.PullSubject("j", 0), true}, {wire.MemberSubject(ps), true},
				{wire.MemberSubject(w1), false}, {wire.ParamSubject("j"), false}}},
		{KindCoordinator, coord,
			[]check{{wire.MemberSubject(w1), true}, {wire.AssignSubject("j"), true}, {wire.SubjModelPublished, true},
				{wire.ParamSubject("j"), false}, {grad(w1), false},
				{"$JS.maas.API.STREAM.PURGE.OBJ_maas-checkpoints", true}, {"$JS.maas.API.STREAM.INFO.OBJ_maas-models", true},
				{"$JS.maas.API.DIRECT.GET.OBJ_maas-data.x", true}, {"$O.maas-data.M.x", false}},
			[]check{{wire.RegisterSubject(w1), true}, {wire.HeartbeatSubject(ps), true}, {wire.ProgressSubject(w1), true},
				{wire.ReportSubject(ps), true}, {wire.DoneSubject(w1), true}, {grad(w1), false}, {wire.ParamSubject("j"), false}}},
		{KindServe, "node1-serve",
			[]check{{"$JS.maas.API.STREAM.INFO.OBJ_maas-models", true}, {"$O.maas-models.C.x", false},
				{wire.RegisterSubject("node1-serve"), false}, {wire.SubjModelPublished, false},
				{"$JS.maas.API.STREAM.INFO.OBJ_maas-data", false}},
			[]check{{wire.SubjModelPublished, true}, {wire.ParamSubject("j"), false}}},
	} {
		p, ok := ProcessPermissions(c.kind, c.id)
		if !ok {
			t.Fatalf("%s has no permissions", c.kind)
		}
		for _, ch := range c.publish {
			if got := allowed(p.Publish, ch.subject); got != ch.want {
				t.Errorf("%s %s may publish %s: %v, want %v", c.kind, c.id, ch.subject, got, ch.want)
			}
		}
		for _, ch := range c.subscribe {
			if got := allowed(p.Subscribe, ch.subject); got != ch.want {
				t.Errorf("%s %s may subscribe to %s: %v, want %v", c.kind, c.id, ch.subject, got, ch.want)
			}
		}
		if want := c.kind != KindServe; p.AllowResponses != want {
			t.Errorf("%s: AllowResponses %v", c.kind, p.AllowResponses)
		}
	}
	if _, ok := ProcessPermissions(KindNATS, "node1-nats"); ok {
		t.Error("a NATS server has permissions as a user")
	}
}

// startNATS runs a NATS server with JetStream whose users are those of
// the secrets in dir, and returns its URL.
func startNATS(t *testing.T, dir string) string {
	t.Helper()
	opts, err := server.ProcessConfigFile(filepath.Join(dir, NATSUsersFile))
	if err != nil {
		t.Fatalf("the NATS server refuses %s: %v", NATSUsersFile, err)
	}
	opts.Host, opts.Port = "127.0.0.1", -1
	opts.JetStream, opts.StoreDir, opts.JetStreamDomain = true, t.TempDir(), wire.JetStreamDomain
	opts.NoLog, opts.NoSigs = true, true
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("NATS server not ready")
	}
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	return s.ClientURL()
}

// natsUserConn is a connection as one process's NATS user, with the
// asynchronous errors the server sends it.
type natsUserConn struct {
	*nats.Conn
	errs chan error
}

func connectAs(t *testing.T, url, dir, id string) *natsUserConn {
	t.Helper()
	auth, err := nats.NkeyOptionFromSeed(filepath.Join(dir, SeedFile(id)))
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 64)
	nc, err := nats.Connect(url, auth, nats.Name(id), nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		select {
		case errs <- err:
		default:
		}
	}))
	if err != nil {
		t.Fatalf("connect as %s: %v", id, err)
	}
	t.Cleanup(nc.Close)
	return &natsUserConn{nc, errs}
}

// denied waits for the server's permissions violation naming what.
func (c *natsUserConn) denied(t *testing.T, what string) {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case err := <-c.errs:
			if errors.Is(err, nats.ErrPermissionViolation) && strings.Contains(err.Error(), what) {
				return
			}
		case <-timeout:
			t.Errorf("%s: no permissions violation for %s", c.Opts.Name, what)
			return
		}
	}
}

// receive waits for a message on sub.
func receive(t *testing.T, sub *nats.Subscription, what string) {
	t.Helper()
	if _, err := sub.NextMsg(5 * time.Second); err != nil {
		t.Errorf("%s did not arrive: %v", what, err)
	}
}

func TestPermissionsOnNATSServer(t *testing.T) {
	_, dir := initSecrets(t)
	url := startNATS(t, dir)
	const w1, w2 = "node1-worker-1", "node3-worker-1"

	if nc, err := nats.Connect(url); err == nil {
		nc.Close()
		t.Error("a client without a key was let in")
	}
	stranger, _ := nkeys.CreateUser()
	seed, _ := stranger.Seed()
	strangerFile := filepath.Join(t.TempDir(), "stranger.nk")
	os.WriteFile(strangerFile, seed, 0o600)
	if auth, err := nats.NkeyOptionFromSeed(strangerFile); err != nil {
		t.Fatal(err)
	} else if nc, err := nats.Connect(url, auth); err == nil {
		nc.Close()
		t.Error("a key not in nats-users.conf was let in")
	}

	worker, other := connectAs(t, url, dir, w1), connectAs(t, url, dir, w2)
	ps := connectAs(t, url, dir, "node1-paramserver-1")
	coord := connectAs(t, url, dir, "node1-coordinator")
	srv := connectAs(t, url, dir, "node1-serve")

	grads, _ := ps.SubscribeSync("maas.grad.>")
	params, _ := worker.SubscribeSync(wire.ParamSubject("j"))
	otherMember, _ := other.SubscribeSync(wire.MemberSubject(w2))
	for _, c := range []*natsUserConn{ps, worker, other} {
		c.Flush()
	}

	t.Run("gradients", func(t *testing.T) {
		worker.Publish(wire.GradSubject("j", 0, w1), []byte("g"))
		receive(t, grads, "the worker's own gradient")
		worker.Publish(wire.GradSubject("j", 0, w2), []byte("g"))
		worker.denied(t, `Publish to "maas.grad.j.0.`+w2+`"`)
	})
	t.Run("parameters", func(t *testing.T) {
		worker.Publish(wire.ParamSubject("j"), []byte("θ"))
		worker.denied(t, `Publish to "maas.param.j"`)
		ps.Publish(wire.ParamSubject("j"), []byte("θ"))
		receive(t, params, "the parameter server's parameters")
	})
	t.Run("assignments", func(t *testing.T) {
		worker.Publish(wire.AssignSubject("j"), nil)
		worker.denied(t, `Publish to "maas.assign.j"`)
		worker.Publish(wire.MemberSubject(w2), nil)
		worker.denied(t, `Publish to "maas.ctl.member.`+w2+`"`)
		worker.SubscribeSync(wire.MemberSubject(w2))
		worker.denied(t, `Subscription to "maas.ctl.member.`+w2+`"`)
		coord.Publish(wire.MemberSubject(w2), []byte("assignment"))
		receive(t, otherMember, "the coordinator's assignment")
	})
	t.Run("requests and replies", func(t *testing.T) {
		worker.Subscribe(wire.MemberSubject(w1), func(m *nats.Msg) { m.Respond([]byte("ack")) })
		ps.Subscribe("maas.pull.*.*", func(m *nats.Msg) { m.Respond([]byte("chunk")) })
		coord.Subscribe(wire.RegisterSubject("*"), func(m *nats.Msg) { m.Respond([]byte("ok")) })
		worker.Flush()
		ps.Flush()
		coord.Flush()
		for _, r := range []struct {
			from *natsUserConn
			subj string
		}{{coord, wire.MemberSubject(w1)}, {worker, wire.PullSubject("j", 0)}, {worker, wire.RegisterSubject(w1)}} {
			if _, err := r.from.Request(r.subj, nil, 5*time.Second); err != nil {
				t.Errorf("%s: request on %s: %v", r.from.Opts.Name, r.subj, err)
			}
		}
		worker.Publish("_INBOX.forged", nil)
		worker.denied(t, `Publish to "_INBOX.forged"`)
		srv.Publish(wire.RegisterSubject("node1-serve"), nil)
		srv.denied(t, `Publish to "maas.ctl.register.node1-serve"`)
		worker.Publish(wire.HeartbeatSubject(w2), nil)
		worker.denied(t, `Publish to "maas.ctl.heartbeat.`+w2+`"`)
	})
	t.Run("object store", func(t *testing.T) {
		objectStorePermissions(t, worker, ps, coord, srv)
	})
	t.Run("data bucket", func(t *testing.T) {
		dataPermissions(t, connectAs(t, url, dir, "operator"), worker, coord, srv)
	})
}

// objectStorePermissions checks who may read and write the model and
// checkpoint buckets.
func objectStorePermissions(t *testing.T, worker, ps, coord, srv *natsUserConn) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	js := func(c *natsUserConn) jetstream.JetStream {
		j, err := wire.JetStream(c.Conn)
		if err != nil {
			t.Fatal(err)
		}
		return j
	}
	// refused runs op as c and wants it to fail because the server
	// refused c's request on the subject starting with subj.
	refused := func(c *natsUserConn, subj string, op func(ctx context.Context) error) {
		t.Helper()
		rctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		defer cancel()
		if err := op(rctx); err == nil {
			t.Errorf("%s: allowed to publish %s", c.Opts.Name, subj)
		}
		c.denied(t, `Publish to "`+subj)
	}
	model := bytes.Repeat([]byte("weights!"), 40_000) // several chunks

	models, err := js(worker).CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: wire.ModelBucket})
	if err != nil {
		t.Fatalf("worker creates the model bucket: %v", err)
	}
	if _, err := models.PutBytes(ctx, "m/1/model.safetensors", model); err != nil {
		t.Fatalf("worker uploads a model: %v", err)
	}
	for _, reader := range []*natsUserConn{srv, coord} {
		store, err := js(reader).ObjectStore(ctx, wire.ModelBucket)
		if err != nil {
			t.Fatalf("%s opens the model bucket: %v", reader.Opts.Name, err)
		}
		got, err := store.GetBytes(ctx, "m/1/model.safetensors")
		if err != nil || !bytes.Equal(got, model) {
			t.Errorf("%s reads the model: %d bytes, %v", reader.Opts.Name, len(got), err)
		}
		if reader == srv {
			refused(srv, "$O.maas-models.C.", func(ctx context.Context) error {
				_, err := store.PutBytes(ctx, "m/2/model.safetensors", model)
				return err
			})
		}
	}

	ckpts, err := js(ps).CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: wire.CheckpointBucket})
	if err != nil {
		t.Fatalf("parameter server creates the checkpoint bucket: %v", err)
	}
	if _, err := ckpts.PutBytes(ctx, "j-100-0", []byte("state")); err != nil {
		t.Fatalf("parameter server writes a checkpoint: %v", err)
	}
	if data, err := ckpts.GetBytes(ctx, "j-100-0"); err != nil || string(data) != "state" {
		t.Errorf("parameter server reads its checkpoint: %q, %v", data, err)
	}
	coordCkpts, err := js(coord).ObjectStore(ctx, wire.CheckpointBucket)
	if err != nil {
		t.Fatalf("coordinator opens the checkpoint bucket: %v", err)
	}
	if err := coordCkpts.Delete(ctx, "j-100-0"); err != nil {
		t.Errorf("coordinator deletes a checkpoint: %v", err)
	}
	refused(worker, "$JS.API.STREAM.INFO.OBJ_maas-checkpoints", func(ctx context.Context) error {
		_, err := js(worker).ObjectStore(ctx, wire.CheckpointBucket)
		return err
	})
	refused(ps, "$JS.API.STREAM.UPDATE.OBJ_maas-models", func(ctx context.Context) error {
		_, err := js(ps).CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: wire.ModelBucket})
		return err
	})
}
