package coordinator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"slices"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/maas-ml/maas/internal/api"
	"github.com/maas-ml/maas/internal/auth"
	"github.com/maas-ml/maas/internal/jobspec"
	"github.com/maas-ml/maas/internal/wire"
	"github.com/maas-ml/maas/nn"
	"github.com/maas-ml/maas/tensor"
)

// maxSpecBytes bounds a submitted job spec.
const maxSpecBytes = 1 << 20

// route is one endpoint of the API and the role a token needs to call it.
type route struct {
	pattern string
	need    auth.Role
	// leader: only the leader serves it; a follower redirects the call.
	leader bool
	handle func(*Node, http.ResponseWriter, *http.Request)
}

// routes is the API, with its route→role table: with Config.Tokens, a call
// needs a bearer token whose role allows the route's (read ⊂ submit ⊂
// admin). Reading needs read, submitting and cancelling jobs submit, and
// changing the cluster (adding a coordinator) admin.
var routes = []route{
	{"POST /v1/jobs", auth.RoleSubmit, true, (*Node).handleSubmit},
	{"GET /v1/jobs", auth.RoleRead, true, (*Node).handleJobs},
	{"GET /v1/jobs/{id}", auth.RoleRead, true, (*Node).handleJob},
	{"POST /v1/jobs/{id}/cancel", auth.RoleSubmit, true, (*Node).handleCancel},
	{"GET /v1/jobs/{id}/logs", auth.RoleRead, false, (*Node).handleLogs},
	{"GET /v1/jobs/{id}/metrics", auth.RoleRead, false, (*Node).handleMetrics},
	{"GET /v1/models", auth.RoleRead, true, (*Node).handleModels},
	{"GET /v1/models/{name}", auth.RoleRead, true, (*Node).handleModel},
	{"GET /v1/models/{name}/versions/{v}", auth.RoleRead, true, (*Node).handleModel},
	{"GET /v1/models/{name}/versions/{v}/files/{file}", auth.RoleRead, true, (*Node).handleModelFile},
	{"GET /v1/cluster", auth.RoleRead, false, (*Node).handleCluster},      // any node answers
	{"GET /v1/raft/state", auth.RoleRead, false, (*Node).handleRaftState}, // this node's own state
	{"POST /v1/raft/join", auth.RoleAdmin, true, (*Node).handleJoin},
	{"POST /v1/raft/remove", auth.RoleAdmin, true, (*Node).handleRemove},
}

func (n *Node) startHTTP() error {
	ln, err := net.Listen("tcp", n.cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("coordinator: API listen on %s: %w", n.cfg.HTTPAddr, err)
	}
	mux := http.NewServeMux()
	for _, rt := range routes {
		h := func(w http.ResponseWriter, r *http.Request) { rt.handle(n, w, r) }
		if rt.leader {
			h = n.leaderOnly(h)
		}
		// The token is checked first, so that a follower redirects only
		// the calls it would have served.
		mux.HandleFunc(rt.pattern, n.authorize(rt.need, h))
	}
	n.mountUI(mux)
	n.httpLn = ln
	n.httpSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	if n.cfg.TLS != nil {
		// Failed handshakes (a client of another CA, plain HTTP) go to
		// the node's log.
		n.httpSrv.ErrorLog = zap.NewStdLog(n.log.Named("api"))
		n.httpSrv.TLSConfig = n.cfg.TLS.Clone()
		go n.httpSrv.ServeTLS(ln, "", "")
		return nil
	}
	go n.httpSrv.Serve(ln)
	return nil
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code = http.StatusInternalServerError
		b, _ = json.Marshal(api.Error{Error: "encode the answer: " + err.Error()})
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	w.Write(append(b, '\n'))
}

func writeErr(w http.ResponseWriter, code int, field, format string, args ...any) {
	writeJSON(w, code, api.Error{Error: fmt.Sprintf(format, args...), Field: field})
}

// leaderOnly serves h on the leader; a follower redirects to the leader,
// and with no leader the call fails fast with 503.
func (n *Node) leaderOnly(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if n.IsLeader() && n.leaderState() != nil {
			h(w, r)
			return
		}
		if addr := n.leaderHTTP(); addr != "" && addr != n.HTTPAddr() {
			if r.Header.Get(uiHeader) != "" { // the dashboard's: answered from here
				n.forwardToLeader(w, r, addr)
				return
			}
			u := *r.URL
			u.Scheme, u.Host = "http", addr
			if r.TLS != nil { // the coordinators serve alike: the leader too speaks TLS
				u.Scheme = "https"
			}
			http.Redirect(w, r, u.String(), http.StatusTemporaryRedirect)
			return
		}
		// Nothing was done: the call may be made again (ReasonNoLeader).
		w.Header().Set("Retry-After", "1")
		e := api.Error{Reason: api.ReasonNoLeader}
		if n.IsLeader() { // elected a moment ago: its duties are starting
			e.Error = fmt.Sprintf("coordinator %s is becoming the leader; retry", n.cfg.ID)
		} else {
			e.Error = fmt.Sprintf("no quorum: coordinator %s (%s) knows no leader; a majority of the coordinators must be up", n.cfg.ID, n.raft.State())
		}
		writeJSON(w, http.StatusServiceUnavailable, e)
	}
}

func (n *Node) handleSubmit(w http.ResponseWriter, r *http.Request) {
	var req api.SubmitRequest
	// The spec, and initial weights base64-encoded (4 bytes per 3).
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxSpecBytes+maxInitBytes/3*4+8192)).Decode(&req); err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			writeErr(w, http.StatusRequestEntityTooLarge, "init_weights", "request body over %d bytes: initial weights are limited to %d MiB", maxSpecBytes+maxInitBytes/3*4+8192, maxInitBytes>>20)
			return
		}
		writeErr(w, http.StatusBadRequest, "", "request body: %v", err)
		return
	}
	if len(req.Spec) > maxSpecBytes {
		writeErr(w, http.StatusRequestEntityTooLarge, "", "job spec is %d bytes; the limit is %d", len(req.Spec), maxSpecBytes)
		return
	}
	spec, err := jobspec.Parse([]byte(req.Spec))
	if err != nil {
		var fe *jobspec.FieldError
		field := ""
		if errors.As(err, &fe) {
			field = fe.Field
		}
		writeErr(w, http.StatusBadRequest, field, "%v", err)
		return
	}
	if err := checkDataPath(spec.Dataset.Path, n.cfg.DataRoots); err != nil {
		writeErr(w, http.StatusBadRequest, "dataset.path", "%v", err)
		return
	}
	if req.Workers == 0 {
		req.Workers = 1
	}
	if req.ParameterServers == 0 {
		req.ParameterServers = 1
	}
	if req.Workers < 0 || req.Workers > 256 {
		writeErr(w, http.StatusBadRequest, "workers", "workers must be 1..256, got %d", req.Workers)
		return
	}
	if req.ParameterServers < 0 || req.ParameterServers > 64 {
		writeErr(w, http.StatusBadRequest, "parameter_servers", "parameter servers must be 1..64, got %d", req.ParameterServers)
		return
	}
	if spec.Optimizer.ClipNorm > 0 && req.ParameterServers > 1 {
		writeErr(w, http.StatusBadRequest, "optimizer.clip_norm", "clipping by global norm needs one parameter server (each server sees only its range)")
		return
	}
	m, err := nn.Build(spec.Model, tensor.Reference)
	if err != nil {
		writeErr(w, http.StatusBadRequest, "model", "%v", err)
		return
	}
	if req.MaxSteps < 0 {
		writeErr(w, http.StatusBadRequest, "max_steps", "max_steps must be ≥ 0 (0: the spec's epochs), got %d", req.MaxSteps)
		return
	}
	var initObject string
	if len(req.InitWeights) > 0 {
		if len(req.InitWeights) > maxInitBytes {
			writeErr(w, http.StatusRequestEntityTooLarge, "init_weights", "initial weights are %d bytes; the limit is %d MiB", len(req.InitWeights), maxInitBytes>>20)
			return
		}
		if err := checkInitWeights(m, req.InitWeights); err != nil {
			writeErr(w, http.StatusBadRequest, "init_weights", "initial weights do not fit the spec's model: %v", err)
			return
		}
		if initObject, err = n.storeInitWeights(r.Context(), req.InitWeights); err != nil {
			writeErr(w, http.StatusServiceUnavailable, "init_weights", "%v; retry", err)
			return
		}
	}
	train, field, code, err := n.trainSamples(r.Context(), spec)
	if err != nil {
		writeErr(w, code, field, "%v", err)
		return
	}
	spe := int64((train + spec.BatchSize - 1) / spec.BatchSize)
	if req.Workers > spec.BatchSize {
		writeErr(w, http.StatusBadRequest, "workers", "%d workers cannot split a batch of %d", req.Workers, spec.BatchSize)
		return
	}
	canonical, err := spec.Marshal()
	if err != nil {
		writeErr(w, http.StatusInternalServerError, "", "%v", err)
		return
	}
	total := spe * int64(spec.Epochs)
	if req.MaxSteps > 0 {
		total = min(total, req.MaxSteps)
	}
	id, err := n.Propose(r.Context(), Command{Type: CmdSubmitJob, RequestID: r.Header.Get("Idempotency-Key"), Job: &JobRecord{
		Name: spec.Name, Spec: string(canonical), Workers: req.Workers, ParameterServers: req.ParameterServers,
		NumParams: len(m.Params), StepsPerEpoch: spe, TotalSteps: total, Epochs: spec.Epochs, Init: initObject}})
	if err != nil {
		n.writeProposeErr(w, err)
		return
	}
	if ls := n.leaderState(); ls != nil {
		from := "the seed's initialisation"
		if initObject != "" {
			from = "initial weights " + initObject
		}
		ls.logf(id, "submitted: %s, %d workers, %d parameter servers, %d steps, from %s", spec.Name, req.Workers, req.ParameterServers, total, from)
	}
	writeJSON(w, http.StatusCreated, api.SubmitResponse{ID: id})
}

func (n *Node) writeProposeErr(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, ErrNotLeader):
		writeErr(w, http.StatusServiceUnavailable, "", "%v; retry", err)
	case errors.Is(err, ErrNotFound):
		writeErr(w, http.StatusNotFound, "", "%v", err)
	case errors.Is(err, ErrConflict):
		writeErr(w, http.StatusConflict, "", "%v", err)
	default:
		writeErr(w, http.StatusInternalServerError, "", "%v", err)
	}
}

// status builds a job's API view from the FSM and the leader's memory.
func (n *Node) status(j *JobRecord) api.JobStatus {
	s := api.JobStatus{ID: j.ID, Name: j.Name, State: j.State, Reason: j.Reason, Submitted: j.Submitted,
		Started: j.Started, Finished: j.Finished, Workers: j.Workers, ParameterServers: j.ParameterServers,
		CommittedStep: j.CommittedStep(), TotalSteps: j.TotalSteps, NumParams: j.NumParams, StepsPerEpoch: j.StepsPerEpoch, Epochs: j.Epochs}
	if cur := j.Current(); cur != nil {
		s.Epoch, s.Members, s.Servers = cur.Epoch, slices.Clone(cur.Members), slices.Clone(cur.Servers)
	}
	for _, m := range j.Memberships {
		s.Memberships = append(s.Memberships, api.Membership{Epoch: m.Epoch, FromStep: m.FromStep,
			Members: slices.Clone(m.Members), Servers: slices.Clone(m.Servers), Reset: m.Reset})
	}
	if j.Model != nil {
		mv := modelView(*j.Model)
		s.Model = &mv
	}
	if ls := n.leaderState(); ls != nil {
		ls.mu.Lock()
		if jp := ls.progress[j.ID]; jp != nil {
			s.Step = jp.step + 1
			if jp.n > 0 {
				s.Loss, s.Accuracy = jp.lossSum/float64(jp.n), float64(jp.correct)/float64(jp.n)
			} else if jp.prevN > 0 { // between epochs: the one that ended
				s.Loss, s.Accuracy = jp.prevLossSum/float64(jp.prevN), float64(jp.prevCorrect)/float64(jp.prevN)
			}
			if math.IsNaN(s.Loss) || math.IsInf(s.Loss, 0) {
				s.Loss, s.LossNotFinite = 0, true
			}
			if d := jp.last.Sub(jp.first).Seconds(); d > 0 {
				s.SamplesPerSec = float64(jp.samples) / d
			}
			if jp.reports > 0 {
				r := float64(jp.reports) * 1000
				s.StepTime = &api.StepTime{ComputeMS: float64(jp.computeUS) / r, PushMS: float64(jp.pushUS) / r, WaitMS: float64(jp.waitUS) / r}
			}
		}
		ls.mu.Unlock()
	}
	if j.State == api.JobSucceeded {
		s.Step = j.TotalSteps
	}
	return s
}

func modelView(m ModelRecord) api.ModelVersion {
	return api.ModelVersion{Name: m.Name, Version: m.Version, Job: m.Job, Created: m.Created, Bucket: m.Bucket,
		Prefix: m.Prefix, Files: slices.Clone(m.Files), Metrics: m.Metrics}
}

func (n *Node) job(id string) (*JobRecord, bool) {
	var j *JobRecord
	n.fsm.Read(func(st *State) {
		if rec, ok := st.Jobs[id]; ok {
			c := *rec
			c.Memberships = slices.Clone(rec.Memberships)
			c.Checkpoints = slices.Clone(rec.Checkpoints)
			j = &c
		}
	})
	return j, j != nil
}

func (n *Node) handleJobs(w http.ResponseWriter, r *http.Request) {
	var ids []string
	n.fsm.Read(func(st *State) { ids = slices.Clone(st.Order) })
	out := []api.JobStatus{}
	for i := len(ids) - 1; i >= 0; i-- {
		if j, ok := n.job(ids[i]); ok {
			out = append(out, n.status(j))
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (n *Node) handleJob(w http.ResponseWriter, r *http.Request) {
	j, ok := n.job(r.PathValue("id"))
	if !ok {
		writeErr(w, http.StatusNotFound, "", "job %q not found", r.PathValue("id"))
		return
	}
	s := n.status(j)
	s.Spec = j.Spec
	writeJSON(w, http.StatusOK, s)
}

func (n *Node) handleCancel(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	j, ok := n.job(id)
	if !ok {
		writeErr(w, http.StatusNotFound, "", "job %q not found", id)
		return
	}
	if !api.Terminal(j.State) {
		n.finish(id, api.JobCancelled, "cancelled by a user")
		j, _ = n.job(id)
	}
	writeJSON(w, http.StatusOK, n.status(j))
}

func (n *Node) handleLogs(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	j, ok := n.job(id)
	if !ok {
		writeErr(w, http.StatusNotFound, "", "job %q not found", id)
		return
	}
	since, _ := strconv.ParseInt(r.URL.Query().Get("since"), 10, 64)
	// Done once the job has ended and its last events have had time to
	// reach the history (the leader writes them just after the state
	// changes); this node waits for those it wrote itself.
	page := api.LogPage{Done: api.Terminal(j.State) && time.Since(j.Finished) >= historySettle}
	if api.Terminal(j.State) {
		n.flushHistory(2 * time.Second)
	}
	var err error
	if page.Entries, err = n.jobEvents(r.Context(), id, uint64(max(since, 0))); err != nil {
		writeErr(w, http.StatusServiceUnavailable, "", "%v; retry", err)
		return
	}
	writeJSON(w, http.StatusOK, page)
}

// handleMetrics answers a job's training curves, from its history.
func (n *Node) handleMetrics(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if _, ok := n.job(id); !ok {
		writeErr(w, http.StatusNotFound, "", "job %q not found", id)
		return
	}
	m, err := n.jobMetrics(r.Context(), id)
	if err != nil {
		writeErr(w, http.StatusServiceUnavailable, "", "%v; retry", err)
		return
	}
	writeJSON(w, http.StatusOK, m)
}

func (n *Node) handleModels(w http.ResponseWriter, r *http.Request) {
	out := []api.ModelVersion{}
	n.fsm.Read(func(st *State) {
		names := make([]string, 0, len(st.Models))
		for name := range st.Models {
			names = append(names, name)
		}
		slices.Sort(names)
		for _, name := range names {
			for _, m := range st.Models[name] {
				out = append(out, modelView(m))
			}
		}
	})
	writeJSON(w, http.StatusOK, out)
}

// findModel returns the named model's version v (0: the newest).
func (n *Node) findModel(name string, v int) (api.ModelVersion, bool) {
	var mv api.ModelVersion
	var ok bool
	n.fsm.Read(func(st *State) {
		vs := st.Models[name]
		if len(vs) == 0 {
			return
		}
		if v == 0 {
			mv, ok = modelView(vs[len(vs)-1]), true
			return
		}
		if v >= 1 && v <= len(vs) {
			mv, ok = modelView(vs[v-1]), true
		}
	})
	return mv, ok
}

func (n *Node) modelFromPath(w http.ResponseWriter, r *http.Request) (api.ModelVersion, bool) {
	name, vs := r.PathValue("name"), r.PathValue("v")
	v := 0
	if vs != "" {
		var err error
		if v, err = strconv.Atoi(vs); err != nil || v < 1 {
			writeErr(w, http.StatusBadRequest, "", "version %q must be a positive integer", vs)
			return api.ModelVersion{}, false
		}
	}
	mv, ok := n.findModel(name, v)
	if !ok {
		writeErr(w, http.StatusNotFound, "", "model %q version %s not found", name, vs)
	}
	return mv, ok
}

func (n *Node) handleModel(w http.ResponseWriter, r *http.Request) {
	if mv, ok := n.modelFromPath(w, r); ok {
		writeJSON(w, http.StatusOK, mv)
	}
}

func (n *Node) handleModelFile(w http.ResponseWriter, r *http.Request) {
	mv, ok := n.modelFromPath(w, r)
	if !ok {
		return
	}
	file := r.PathValue("file")
	if !slices.Contains(mv.Files, file) {
		writeErr(w, http.StatusNotFound, "", "model %s version %d has no file %q (files: %v)", mv.Name, mv.Version, file, mv.Files)
		return
	}
	js, err := wire.JetStream(n.nc)
	if err != nil {
		writeErr(w, http.StatusInternalServerError, "", "%v", err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), time.Minute)
	defer cancel()
	store, err := js.ObjectStore(ctx, mv.Bucket)
	if err != nil {
		writeErr(w, http.StatusBadGateway, "", "object store bucket %s: %v", mv.Bucket, err)
		return
	}
	obj, err := store.Get(ctx, mv.Prefix+file)
	if err != nil {
		writeErr(w, http.StatusBadGateway, "", "object %s%s: %v", mv.Prefix, file, err)
		return
	}
	defer obj.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	if _, err := io.Copy(w, obj); err != nil {
		n.log.Warn("model file download", zap.String("file", file), zap.Error(err))
	}
}

// handleRaftState answers, from this node (never redirected), the index of
// the last log entry its FSM applied and a digest of its state: nodes at
// the same index must agree (the chaos test compares them).
func (n *Node) handleRaftState(w http.ResponseWriter, r *http.Request) {
	index, digest, err := n.fsm.Digest()
	if err != nil {
		writeErr(w, http.StatusInternalServerError, "", "%v", err)
		return
	}
	writeJSON(w, http.StatusOK, api.RaftState{ID: n.cfg.ID, State: n.raft.State().String(), Term: n.raft.CurrentTerm(), AppliedIndex: index, Digest: digest})
}

func (n *Node) handleCluster(w http.ResponseWriter, r *http.Request) {
	out := api.ClusterStatus{Nodes: []api.Node{}, Servers: []api.Member{}, Workers: []api.Member{}}
	_, leaderID := n.raft.LeaderWithID()
	out.Leader = string(leaderID)
	var nodes map[string]NodeInfo
	members := map[string]MemberInfo{}
	busy := map[string]string{}
	n.fsm.Read(func(st *State) {
		nodes = map[string]NodeInfo{}
		for id, ni := range st.Nodes {
			nodes[id] = ni
		}
		for id, m := range st.Members {
			members[id] = m
		}
		for _, id := range st.Order {
			j := st.Jobs[id]
			if (j.State == api.JobRunning || j.State == api.JobPaused) && j.Current() != nil {
				for _, m := range append(slices.Clone(j.Current().Members), j.Current().Servers...) {
					busy[m] = j.ID
				}
			}
		}
	})
	if f := n.raft.GetConfiguration(); f.Error() == nil {
		for _, s := range f.Configuration().Servers {
			out.Nodes = append(out.Nodes, api.Node{ID: string(s.ID), RaftAddr: string(s.Address),
				HTTPAddr: nodes[string(s.ID)].HTTPAddr, Leader: s.ID == leaderID, Voter: s.Suffrage == 0})
		}
	}
	n.askRaftStates(r, out.Nodes)
	out.NATS = n.natsView()
	ls := n.leaderState()
	ids := make([]string, 0, len(members))
	for id := range members {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		m := members[id]
		am := api.Member{ID: id, Kind: m.Kind, Host: m.Host, Threads: m.Threads, Device: m.Device, State: "unknown", Job: busy[id]}
		if ls != nil {
			ls.mu.Lock()
			am.LastSeen = ls.lastSeen[id]
			ls.mu.Unlock()
			switch {
			case time.Since(am.LastSeen) >= n.cfg.MemberTimeout:
				am.State = "dead"
			case am.Job != "":
				am.State = "busy"
			default:
				am.State = "idle"
			}
		}
		if m.Kind == "worker" {
			out.Workers = append(out.Workers, am)
		} else {
			out.Servers = append(out.Servers, am)
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (n *Node) handleJoin(w http.ResponseWriter, r *http.Request) {
	var req api.JoinRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&req); err != nil || req.ID == "" || req.RaftAddr == "" || req.HTTPAddr == "" {
		writeErr(w, http.StatusBadRequest, "", "a join needs id, raft_addr and http_addr")
		return
	}
	if err := n.Join(r.Context(), req.ID, req.RaftAddr, req.HTTPAddr); err != nil {
		n.writeProposeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"joined": req.ID})
}

func (n *Node) handleRemove(w http.ResponseWriter, r *http.Request) {
	var req api.RemoveRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&req); err != nil || req.ID == "" {
		writeErr(w, http.StatusBadRequest, "id", "a removal needs the id of the coordinator to remove")
		return
	}
	if err := n.Remove(r.Context(), req.ID); err != nil {
		n.writeProposeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"removed": req.ID})
}
