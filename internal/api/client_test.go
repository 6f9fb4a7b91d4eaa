package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// request is what the fake coordinator saw.
type request struct {
	Method, Path, Query, Body, Auth string
}

// fakeCoordinator is an in-memory stand-in for the coordinator's HTTP
// API: canned answers, and a record of the requests it got.
type fakeCoordinator struct {
	*httptest.Server
	mu   sync.Mutex // guards reqs
	reqs []request
}

var (
	testTime = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	testJob  = JobStatus{ID: "j1", Name: "mnist", State: JobRunning, Submitted: testTime,
		Workers: 2, ParameterServers: 1, Epoch: 3, Members: []string{"w1", "w2"},
		Step: 120, TotalSteps: 600, StepsPerEpoch: 60, Epochs: 10, Loss: 0.25, Accuracy: 0.91}
	testModel = ModelVersion{Name: "mnist", Version: 2, Job: "j1", Created: testTime,
		Bucket: "models", Prefix: "mnist/2/", Files: []string{"model.safetensors", "model.yaml"},
		Metrics: map[string]float64{"accuracy": 0.99}}
	testCluster = ClusterStatus{Leader: "c1",
		Nodes:   []Node{{ID: "c1", RaftAddr: "127.0.0.1:7000", HTTPAddr: "127.0.0.1:7070", Leader: true, Voter: true}},
		Workers: []Member{{ID: "w1", Kind: "worker", Host: "h1", Threads: 4, State: "busy", Job: "j1", LastSeen: testTime}}}
)

func newFakeCoordinator(t *testing.T) *fakeCoordinator {
	t.Helper()
	f := &fakeCoordinator{}
	mux := http.NewServeMux()
	reply := func(code int, v any) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(code)
			json.NewEncoder(w).Encode(v)
		}
	}
	mux.HandleFunc("POST /v1/jobs", reply(http.StatusCreated, SubmitResponse{ID: "j1"}))
	mux.HandleFunc("GET /v1/jobs", reply(http.StatusOK, []JobStatus{testJob}))
	mux.HandleFunc("GET /v1/jobs/{id}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("id") != "j1" {
			reply(http.StatusNotFound, Error{Error: "job " + r.PathValue("id") + " not found"})(w, r)
			return
		}
		reply(http.StatusOK, testJob)(w, r)
	})
	cancelled := testJob
	cancelled.State = JobCancelled
	mux.HandleFunc("POST /v1/jobs/{id}/cancel", reply(http.StatusOK, cancelled))
	mux.HandleFunc("GET /v1/jobs/{id}/logs", reply(http.StatusOK, LogPage{
		Entries: []LogEntry{{Seq: 4, Time: testTime, Message: "epoch 1 done"}}, Done: true}))
	mux.HandleFunc("GET /v1/models", reply(http.StatusOK, []ModelVersion{testModel}))
	mux.HandleFunc("GET /v1/models/{name}", reply(http.StatusOK, testModel))
	mux.HandleFunc("GET /v1/models/{name}/versions/{v}", reply(http.StatusOK, testModel))
	mux.HandleFunc("GET /v1/models/{name}/versions/{v}/files/{file}", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "bytes of "+r.PathValue("file"))
	})
	mux.HandleFunc("GET /v1/cluster", reply(http.StatusOK, testCluster))
	mux.HandleFunc("POST /v1/raft/join", func(w http.ResponseWriter, r *http.Request) {})
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.reqs = append(f.reqs, request{r.Method, r.URL.EscapedPath(), r.URL.RawQuery, string(b), r.Header.Get("Authorization")})
		f.mu.Unlock()
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(f.Close)
	return f
}

// last returns the latest request the fake got.
func (f *fakeCoordinator) last(t *testing.T) request {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.reqs) == 0 {
		t.Fatal("the coordinator got no request")
	}
	return f.reqs[len(f.reqs)-1]
}

func newTestClient(t *testing.T, server string, opts ...Option) *Client {
	t.Helper()
	c, err := NewClient(server, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestClientCalls(t *testing.T) {
	f := newFakeCoordinator(t)
	c := newTestClient(t, f.URL, WithToken("s3cret"))
	ctx := context.Background()
	cancelled := testJob
	cancelled.State = JobCancelled
	tests := []struct {
		name string
		call func() (any, error)
		req  request
		want any
	}{
		{"Submit", func() (any, error) {
			return c.Submit(ctx, SubmitRequest{Spec: "name: x\n", Workers: 2, ParameterServers: 1})
		}, request{Method: "POST", Path: "/v1/jobs", Body: `{"spec":"name: x\n","workers":2,"parameter_servers":1}`}, SubmitResponse{ID: "j1"}},
		{"Jobs", func() (any, error) { return c.Jobs(ctx) }, request{Method: "GET", Path: "/v1/jobs"}, []JobStatus{testJob}},
		{"Job", func() (any, error) { return c.Job(ctx, "j1") }, request{Method: "GET", Path: "/v1/jobs/j1"}, testJob},
		{"Cancel", func() (any, error) { return c.Cancel(ctx, "j1") }, request{Method: "POST", Path: "/v1/jobs/j1/cancel"}, cancelled},
		{"Logs", func() (any, error) { return c.Logs(ctx, "j1", 3) }, request{Method: "GET", Path: "/v1/jobs/j1/logs", Query: "since=3"},
			LogPage{Entries: []LogEntry{{Seq: 4, Time: testTime, Message: "epoch 1 done"}}, Done: true}},
		{"Models", func() (any, error) { return c.Models(ctx) }, request{Method: "GET", Path: "/v1/models"}, []ModelVersion{testModel}},
		{"ModelNewest", func() (any, error) { return c.Model(ctx, "mnist", 0) }, request{Method: "GET", Path: "/v1/models/mnist"}, testModel},
		{"ModelVersion", func() (any, error) { return c.Model(ctx, "mnist", 2) }, request{Method: "GET", Path: "/v1/models/mnist/versions/2"}, testModel},
		{"Cluster", func() (any, error) { return c.Cluster(ctx) }, request{Method: "GET", Path: "/v1/cluster"}, testCluster},
		{"Join", func() (any, error) {
			return nil, c.Join(ctx, JoinRequest{ID: "c2", RaftAddr: "h:7000", HTTPAddr: "h:7070"})
		}, request{Method: "POST", Path: "/v1/raft/join", Body: `{"id":"c2","raft_addr":"h:7000","http_addr":"h:7070"}`}, nil},
		{"EscapedID", func() (any, error) {
			_, err := c.Job(ctx, "a/b c")
			return nil, err
		}, request{Method: "GET", Path: "/v1/jobs/a%2Fb%20c"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.call()
			if tt.name == "EscapedID" {
				// The fake knows only j1: the 404 shows the id arrived whole.
				if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "job a/b c not found") {
					t.Fatalf("err = %v, want the 404 for job a/b c", err)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			req := f.last(t)
			tt.req.Auth = "Bearer s3cret"
			req.Body = strings.TrimSpace(req.Body)
			if req != tt.req {
				t.Errorf("request = %+v, want %+v", req, tt.req)
			}
			if tt.want != nil && !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestModelFile(t *testing.T) {
	f := newFakeCoordinator(t)
	c := newTestClient(t, f.URL)
	var buf bytes.Buffer
	if err := c.ModelFile(context.Background(), "my model", 2, "model.yaml", &buf); err != nil {
		t.Fatal(err)
	}
	if buf.String() != "bytes of model.yaml" {
		t.Errorf("got %q", buf.String())
	}
	if got, want := f.last(t).Path, "/v1/models/my%20model/versions/2/files/model.yaml"; got != want {
		t.Errorf("path = %s, want %s", got, want)
	}
	if err := c.ModelFile(context.Background(), "mnist", 0, "model.yaml", &buf); err == nil {
		t.Error("version 0: no error")
	}
}

// signalWriter closes got on its first write. (It hides its buffer's
// ReadFrom, which would bypass Write.)
type signalWriter struct {
	buf  bytes.Buffer
	once sync.Once
	got  chan struct{}
}

func (w *signalWriter) Write(p []byte) (int, error) {
	n, err := w.buf.Write(p)
	w.once.Do(func() { close(w.got) })
	return n, err
}

// TestModelFileStreams checks that bytes reach the writer before the
// coordinator has sent them all.
func TestModelFileStreams(t *testing.T) {
	w := &signalWriter{got: make(chan struct{})}
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		io.WriteString(rw, "first ")
		rw.(http.Flusher).Flush()
		select {
		case <-w.got:
		case <-time.After(5 * time.Second):
			return // the client waited for the whole body: the test fails on the content
		}
		io.WriteString(rw, "second")
	}))
	defer srv.Close()
	c := newTestClient(t, srv.URL)
	if err := c.ModelFile(context.Background(), "m", 1, "f", w); err != nil {
		t.Fatal(err)
	}
	if w.buf.String() != "first second" {
		t.Errorf("got %q, want the first chunk written before the second was sent", w.buf.String())
	}
}

func TestStatusErrors(t *testing.T) {
	tests := []struct {
		code     int
		body     string
		sentinel error
		want     string
		field    string
	}{
		{400, `{"error":"must be positive","field":"epochs"}`, ErrBadRequest, "coordinator: 400: epochs: must be positive", "epochs"},
		{404, `{"error":"job x not found"}`, ErrNotFound, "coordinator: 404: job x not found", ""},
		{503, `{"error":"no leader: 1 of 3 coordinators up"}`, ErrNoLeader, "coordinator: 503: no leader: 1 of 3 coordinators up", ""},
		{500, "boom\n", nil, "coordinator: 500: boom", ""},
		{502, "", nil, "coordinator: 502: Bad Gateway", ""},
	}
	for _, tt := range tests {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(tt.code)
			io.WriteString(w, tt.body)
		}))
		c := newTestClient(t, srv.URL)
		_, err := c.Submit(context.Background(), SubmitRequest{Spec: "x"})
		srv.Close()
		var se *StatusError
		if !errors.As(err, &se) {
			t.Fatalf("%d: err = %v (%T), want a *StatusError", tt.code, err, err)
		}
		if se.Code != tt.code || se.Field != tt.field || err.Error() != tt.want {
			t.Errorf("%d: err = %q %+v, want %q field %q", tt.code, err, se, tt.want, tt.field)
		}
		for _, s := range []error{ErrBadRequest, ErrNotFound, ErrNoLeader} {
			if errors.Is(err, s) != (s == tt.sentinel) {
				t.Errorf("%d: errors.Is(err, %v) = %v", tt.code, s, !(s == tt.sentinel))
			}
		}
	}
}

// TestFollowerRedirect sends calls to a follower that redirects (307) to
// the leader: a POST's body and the token must arrive there too, though
// the leader's address has another host name.
func TestFollowerRedirect(t *testing.T) {
	leader := newFakeCoordinator(t)
	leaderURL := strings.Replace(leader.URL, "127.0.0.1", "localhost", 1)
	var redirected int
	var mu sync.Mutex
	follower := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		redirected++
		mu.Unlock()
		http.Redirect(w, r, leaderURL+r.URL.RequestURI(), http.StatusTemporaryRedirect)
	}))
	defer follower.Close()
	c := newTestClient(t, follower.URL, WithToken("tok"))

	resp, err := c.Submit(context.Background(), SubmitRequest{Spec: "name: x\n", Workers: 3})
	if err != nil {
		t.Fatal(err)
	}
	if resp.ID != "j1" {
		t.Errorf("id = %q", resp.ID)
	}
	want := request{Method: "POST", Path: "/v1/jobs", Body: `{"spec":"name: x\n","workers":3}`, Auth: "Bearer tok"}
	if got := leader.last(t); strings.TrimSpace(got.Body) != want.Body || got.Method != want.Method || got.Path != want.Path || got.Auth != want.Auth {
		t.Errorf("leader got %+v, want %+v", got, want)
	}
	js, err := c.Job(context.Background(), "j1")
	if err != nil {
		t.Fatal(err)
	}
	if js.ID != "j1" {
		t.Errorf("job = %+v", js)
	}
	if _, err := c.Logs(context.Background(), "j1", 7); err != nil {
		t.Fatal(err)
	}
	if got := leader.last(t); got.Query != "since=7" {
		t.Errorf("query after redirect = %q", got.Query)
	}
	mu.Lock()
	defer mu.Unlock()
	if redirected != 3 {
		t.Errorf("follower saw %d calls, want 3", redirected)
	}
}

func TestRedirectLoop(t *testing.T) {
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, srv.URL+r.URL.RequestURI(), http.StatusTemporaryRedirect)
	}))
	defer srv.Close()
	_, err := newTestClient(t, srv.URL).Jobs(context.Background())
	if err == nil || !strings.Contains(err.Error(), "redirect in a loop") || errors.Is(err, ErrUnreachable) {
		t.Errorf("err = %v, want a redirect loop", err)
	}
}

func TestUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	c := newTestClient(t, addr) // a bare host:port
	if got, want := c.Server(), "http://"+addr; got != want {
		t.Errorf("server = %s, want %s", got, want)
	}
	_, err = c.Jobs(context.Background())
	if !errors.Is(err, ErrUnreachable) {
		t.Fatalf("err = %v, want ErrUnreachable", err)
	}
	for _, s := range []string{"http://" + addr + " is unreachable", "maas local", "--server", "MAAS_SERVER"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("err = %q, want it to say %q", err, s)
		}
	}
}

func TestTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/jobs" {
			io.WriteString(w, "some bytes, then silence")
			w.(http.Flusher).Flush()
		}
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer srv.Close()
	defer close(release)
	c := newTestClient(t, srv.URL, WithTimeout(20*time.Millisecond))
	if _, err := c.Jobs(context.Background()); !errors.Is(err, ErrTimeout) {
		t.Errorf("Jobs: err = %v, want ErrTimeout", err)
	}
	if err := c.ModelFile(context.Background(), "m", 1, "f", io.Discard); !errors.Is(err, ErrTimeout) {
		t.Errorf("ModelFile: err = %v, want ErrTimeout", err)
	}

	// The caller's own cancellation is not a timeout.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Jobs(ctx); !errors.Is(err, context.Canceled) || errors.Is(err, ErrTimeout) {
		t.Errorf("cancelled: err = %v, want context.Canceled", err)
	}
}

func TestNewClient(t *testing.T) {
	for _, tt := range []struct {
		server, want string
	}{
		{"127.0.0.1:7070", "http://127.0.0.1:7070"},
		{"http://coord:7070/", "http://coord:7070"},
		{"https://coord.example/maas", "https://coord.example/maas"},
	} {
		c, err := NewClient(tt.server)
		if err != nil {
			t.Errorf("%s: %v", tt.server, err)
			continue
		}
		if c.Server() != tt.want {
			t.Errorf("%s: server = %s, want %s", tt.server, c.Server(), tt.want)
		}
	}
	for _, bad := range []string{"", "ftp://x", "http://", "http://a b:1"} {
		if _, err := NewClient(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
	if _, err := NewClient("x:1", WithTimeout(0)); err == nil {
		t.Error("WithTimeout(0): no error")
	}
	if _, err := NewClient("x:1", WithHTTPClient(nil)); err == nil {
		t.Error("WithHTTPClient(nil): no error")
	}
}

// TestBasePath checks that a server URL with a path prefixes every call.
func TestBasePath(t *testing.T) {
	f := newFakeCoordinator(t)
	c := newTestClient(t, f.URL+"/prefix", WithHTTPClient(&http.Client{}))
	c.Jobs(context.Background()) // the fake does not serve /prefix: only the path matters
	if got := f.last(t).Path; got != "/prefix/v1/jobs" {
		t.Errorf("path = %s", got)
	}
}

// TestLeaderWait: a 503 whose reason is no_leader is tried again (with
// the same body) until the coordinator answers, within the wait; any
// other 503 is not; WithLeaderWait(0) does not wait.
func TestLeaderWait(t *testing.T) {
	var calls atomic.Int32
	var bodies []string
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, string(b))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		switch n := calls.Add(1); {
		case r.URL.Path == "/v1/cluster":
			w.WriteHeader(http.StatusServiceUnavailable)
			json.NewEncoder(w).Encode(Error{Error: "draining"})
		case n <= 3:
			w.WriteHeader(http.StatusServiceUnavailable)
			json.NewEncoder(w).Encode(Error{Error: "no quorum: c1 knows no leader", Reason: ReasonNoLeader})
		default:
			w.WriteHeader(http.StatusCreated)
			json.NewEncoder(w).Encode(SubmitResponse{ID: "j-1"})
		}
	}))
	defer srv.Close()
	notices := 0
	c := newTestClient(t, srv.URL, WithLeaderWait(10*time.Second, func(time.Duration) { notices++ }))
	resp, err := c.Submit(t.Context(), SubmitRequest{Spec: "name: x"})
	if err != nil || resp.ID != "j-1" || calls.Load() != 4 || notices != 1 {
		t.Fatalf("submit through an election: %+v %v after %d calls, %d notices", resp, err, calls.Load(), notices)
	}
	for _, b := range bodies {
		if b != bodies[0] || !strings.Contains(b, `"spec":"name: x"`) {
			t.Fatalf("the tries sent different bodies: %q", bodies)
		}
	}
	calls.Store(0)
	if _, err := c.Cluster(t.Context()); !errors.Is(err, ErrNoLeader) || calls.Load() != 1 {
		t.Errorf("a 503 without reason no_leader: %v after %d calls; want it at once", err, calls.Load())
	}
	calls.Store(0)
	c = newTestClient(t, srv.URL, WithLeaderWait(0, nil))
	if _, err := c.Submit(t.Context(), SubmitRequest{Spec: "name: x"}); !errors.Is(err, ErrNoLeader) || calls.Load() != 1 {
		t.Errorf("WithLeaderWait(0): %v after %d calls; want the 503 at once", err, calls.Load())
	}
}
