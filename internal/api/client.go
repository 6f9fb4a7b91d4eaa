package api

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Errors a Client returns, matched with errors.Is. A coordinator's error
// answer is a *StatusError, which matches the sentinel for its status code.
var (
	// ErrBadRequest: the coordinator rejected the request (400); the
	// StatusError's Field names the job spec field at fault, if any.
	ErrBadRequest = errors.New("api: bad request")
	// ErrNotFound: no such job or model (404).
	ErrNotFound = errors.New("api: not found")
	// ErrNoLeader: the coordinators have no leader (503), e.g. no quorum.
	ErrNoLeader = errors.New("api: no leader")
	// ErrUnreachable: no connection to the coordinator could be made.
	ErrUnreachable = errors.New("api: coordinator unreachable")
	// ErrTimeout: the coordinator did not answer within the client's timeout.
	ErrTimeout = errors.New("api: coordinator timed out")
	// ErrUnauthorized: the coordinator wants an API token and got none, an
	// unknown one or an expired one (401); the StatusError's Reason says
	// which.
	ErrUnauthorized = errors.New("api: unauthorized")
	// ErrForbidden: the token's role does not allow the call (403); the
	// StatusError's Need and Role name the roles.
	ErrForbidden = errors.New("api: forbidden")
	// ErrTLS: no TLS session could be set up with the coordinator: its
	// certificate is not one the client trusts, it wants a client
	// certificate, or one side speaks TLS and the other does not.
	ErrTLS = errors.New("api: TLS with the coordinator failed")
)

// DefaultTimeout bounds each call of a Client unless WithTimeout says
// otherwise.
const DefaultTimeout = 10 * time.Second

// DefaultLeaderWait is how long a Client's call waits for the
// coordinators to elect a leader unless WithLeaderWait says otherwise.
const DefaultLeaderWait = 15 * time.Second

// maxRedirects is how many leader redirects one call follows.
const maxRedirects = 10

// StatusError is a coordinator's error answer (any status but 2xx).
type StatusError struct {
	Code  int
	Msg   string
	Field string
	// Reason, Need and Role explain a 401 or 403, Reason a 503 (see
	// Error).
	Reason, Need, Role string
	// Server is the coordinator's address as the client was given it.
	Server string
}

func (e *StatusError) Error() string {
	msg := e.Msg
	if e.Field != "" && !strings.Contains(msg, e.Field) {
		msg = e.Field + ": " + msg
	}
	return fmt.Sprintf("coordinator: %d: %s", e.Code, msg)
}

// Is matches ErrBadRequest (400), ErrUnauthorized (401), ErrForbidden
// (403), ErrNotFound (404) and ErrNoLeader (503).
func (e *StatusError) Is(target error) bool {
	switch target {
	case ErrBadRequest:
		return e.Code == http.StatusBadRequest
	case ErrUnauthorized:
		return e.Code == http.StatusUnauthorized
	case ErrForbidden:
		return e.Code == http.StatusForbidden
	case ErrNotFound:
		return e.Code == http.StatusNotFound
	case ErrNoLeader:
		return e.Code == http.StatusServiceUnavailable
	}
	return false
}

// Client calls a coordinator's API. It is safe for concurrent use.
type Client struct {
	base    *url.URL
	hc      *http.Client
	timeout time.Duration
	token   string
	tls     *tls.Config
	// leaderWait bounds the wait for a leader; noticeWait hears it start.
	leaderWait time.Duration
	noticeWait func(time.Duration)
}

// Option configures a Client.
type Option func(*Client) error

// WithHTTPClient makes the Client send its requests with hc. Its
// CheckRedirect, if set, still decides which redirects are followed.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) error {
		if hc == nil {
			return errors.New("api: WithHTTPClient: nil *http.Client")
		}
		c.hc = hc
		return nil
	}
}

// WithTimeout bounds each call (DefaultTimeout if not given). A file
// download may take longer as long as bytes keep coming: it fails only
// after d without any.
func WithTimeout(d time.Duration) Option {
	return func(c *Client) error {
		if d <= 0 {
			return fmt.Errorf("api: WithTimeout: %v is not positive", d)
		}
		c.timeout = d
		return nil
	}
}

// WithLeaderWait makes a call that finds the coordinators without a leader
// (503 with Reason ReasonNoLeader: they are electing one, or no majority
// is up) try again for up to d in all, then fail with that answer; notice,
// if set, is called when the wait starts. 0 does not wait. The default is
// DefaultLeaderWait without a notice.
func WithLeaderWait(d time.Duration, notice func(wait time.Duration)) Option {
	return func(c *Client) error {
		if d < 0 {
			return fmt.Errorf("api: WithLeaderWait: %v is negative", d)
		}
		c.leaderWait, c.noticeWait = d, notice
		return nil
	}
}

// WithToken sends token as a bearer token on every request, including to
// the leader a follower redirects to.
func WithToken(token string) Option {
	return func(c *Client) error {
		c.token = token
		return nil
	}
}

// WithTLSConfig makes the client check the coordinator's certificate, and
// present its own if the coordinator asks for one, with cfg: for an
// https:// server whose certificate the cluster's CA signed, cfg's RootCAs
// hold that CA. It replaces the TLS configuration of the client's
// transport, which must be an *http.Transport (the default one is).
func WithTLSConfig(cfg *tls.Config) Option {
	return func(c *Client) error {
		if cfg == nil {
			return errors.New("api: WithTLSConfig: nil *tls.Config")
		}
		c.tls = cfg
		return nil
	}
}

// NewClient returns a client for the coordinator at server, a URL such as
// "http://127.0.0.1:7070" or a bare "host:port" (taken as http).
func NewClient(server string, opts ...Option) (*Client, error) {
	s := strings.TrimSpace(server)
	if s == "" {
		return nil, errors.New("api: empty coordinator address; give a URL such as " + DefaultServer)
	}
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("api: coordinator address %q: %w; give a URL such as %s", server, err, DefaultServer)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("api: coordinator address %q: want http://HOST:PORT or https://HOST:PORT, such as %s", server, DefaultServer)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawQuery, u.Fragment = "", ""
	c := &Client{base: u, hc: http.DefaultClient, timeout: DefaultTimeout, leaderWait: DefaultLeaderWait}
	for _, o := range opts {
		if err := o(c); err != nil {
			return nil, err
		}
	}
	if c.tls != nil {
		hc, err := withTLS(c.hc, c.tls)
		if err != nil {
			return nil, err
		}
		c.hc = hc
	}
	c.hc = c.redirecting(c.hc)
	return c, nil
}

// withTLS returns a copy of hc whose transport, a copy of hc's, uses cfg.
func withTLS(hc *http.Client, cfg *tls.Config) (*http.Client, error) {
	var t *http.Transport
	switch rt := hc.Transport.(type) {
	case nil:
		t = http.DefaultTransport.(*http.Transport).Clone()
	case *http.Transport:
		t = rt.Clone()
	default:
		return nil, fmt.Errorf("api: WithTLSConfig: the http.Client's transport is a %T, not an *http.Transport", rt)
	}
	t.TLSClientConfig = cfg.Clone()
	cp := *hc
	cp.Transport = t
	return &cp, nil
}

// redirecting returns a copy of hc that follows a follower's redirects to
// the leader keeping the bearer token, which net/http drops when the host
// changes.
func (c *Client) redirecting(hc *http.Client) *http.Client {
	cp := *hc
	check := hc.CheckRedirect
	cp.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if check != nil {
			if err := check(req, via); err != nil {
				return err
			}
		} else if len(via) >= maxRedirects {
			return errRedirectLoop
		}
		if c.token != "" {
			req.Header.Set("Authorization", "Bearer "+c.token)
		}
		return nil
	}
	return &cp
}

var errRedirectLoop = fmt.Errorf("stopped after %d redirects", maxRedirects)

// Server is the coordinator's address as the Client uses it.
func (c *Client) Server() string { return c.base.String() }

// Submit submits a job.
func (c *Client) Submit(ctx context.Context, req SubmitRequest) (SubmitResponse, error) {
	var resp SubmitResponse
	err := c.callJSON(ctx, http.MethodPost, "/v1/jobs", nil, req, &resp)
	return resp, err
}

// Jobs lists every job, newest first.
func (c *Client) Jobs(ctx context.Context) ([]JobStatus, error) {
	var jobs []JobStatus
	err := c.callJSON(ctx, http.MethodGet, "/v1/jobs", nil, nil, &jobs)
	return jobs, err
}

// Job returns the job id.
func (c *Client) Job(ctx context.Context, id string) (JobStatus, error) {
	var js JobStatus
	p, err := jobPath(id, "")
	if err != nil {
		return js, err
	}
	err = c.callJSON(ctx, http.MethodGet, p, nil, nil, &js)
	return js, err
}

// Cancel cancels the job id and returns its new status.
func (c *Client) Cancel(ctx context.Context, id string) (JobStatus, error) {
	var js JobStatus
	p, err := jobPath(id, "/cancel")
	if err != nil {
		return js, err
	}
	err = c.callJSON(ctx, http.MethodPost, p, nil, nil, &js)
	return js, err
}

// Logs returns the job's log entries with Seq > since.
func (c *Client) Logs(ctx context.Context, id string, since int64) (LogPage, error) {
	var page LogPage
	p, err := jobPath(id, "/logs")
	if err != nil {
		return page, err
	}
	q := url.Values{"since": {strconv.FormatInt(since, 10)}}
	err = c.callJSON(ctx, http.MethodGet, p, q, nil, &page)
	return page, err
}

// Metrics returns the job's training curves.
func (c *Client) Metrics(ctx context.Context, id string) (JobMetrics, error) {
	var m JobMetrics
	p, err := jobPath(id, "/metrics")
	if err != nil {
		return m, err
	}
	err = c.callJSON(ctx, http.MethodGet, p, nil, nil, &m)
	return m, err
}

// Models lists every version of every model.
func (c *Client) Models(ctx context.Context) ([]ModelVersion, error) {
	var ms []ModelVersion
	err := c.callJSON(ctx, http.MethodGet, "/v1/models", nil, nil, &ms)
	return ms, err
}

// Model returns version of the model name; version 0 is the newest.
func (c *Client) Model(ctx context.Context, name string, version int) (ModelVersion, error) {
	var mv ModelVersion
	p, err := modelPath(name, version)
	if err != nil {
		return mv, err
	}
	err = c.callJSON(ctx, http.MethodGet, p, nil, nil, &mv)
	return mv, err
}

// ModelFile writes the bytes of file, one of the version's Files, to w as
// they arrive. version 0 is not allowed: name the version (Model tells
// the newest), so that every file comes from the same one.
func (c *Client) ModelFile(ctx context.Context, name string, version int, file string, w io.Writer) error {
	if version <= 0 {
		return fmt.Errorf("api: model %q: version %d: files need a version number (1 or more)", name, version)
	}
	if file == "" {
		return errors.New("api: empty model file name")
	}
	p, err := modelPath(name, version)
	if err != nil {
		return err
	}
	p += "/files/" + url.PathEscape(file)

	ctx, cl := c.start(ctx)
	defer cl.end()
	resp, err := c.send(ctx, cl, http.MethodGet, p, nil, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body := &idleReader{r: resp.Body, cl: cl}
	if _, err := io.Copy(w, body); err != nil {
		if body.err == nil { // the writer failed
			return fmt.Errorf("api: model %s:%d: %s: %w", name, version, file, err)
		}
		return c.transportError(ctx, cl, http.MethodGet, p, body.err)
	}
	return nil
}

// Cluster returns the coordinator nodes and the registered members.
func (c *Client) Cluster(ctx context.Context) (ClusterStatus, error) {
	var cs ClusterStatus
	err := c.callJSON(ctx, http.MethodGet, "/v1/cluster", nil, nil, &cs)
	return cs, err
}

// Join asks the leader to add a coordinator to the Raft cluster.
func (c *Client) Join(ctx context.Context, req JoinRequest) error {
	return c.callJSON(ctx, http.MethodPost, "/v1/raft/join", nil, req, nil)
}

// RemoveNode takes coordinator id out of the Raft configuration (an
// admin call): for a coordinator whose host is gone for good.
func (c *Client) RemoveNode(ctx context.Context, id string) error {
	return c.callJSON(ctx, http.MethodPost, "/v1/raft/remove", nil, RemoveRequest{ID: id}, nil)
}

func jobPath(id, suffix string) (string, error) {
	if id == "" {
		return "", errors.New("api: empty job id")
	}
	return "/v1/jobs/" + url.PathEscape(id) + suffix, nil
}

func modelPath(name string, version int) (string, error) {
	if name == "" {
		return "", errors.New("api: empty model name")
	}
	if version < 0 {
		return "", fmt.Errorf("api: model %q: version %d is negative", name, version)
	}
	p := "/v1/models/" + url.PathEscape(name)
	if version > 0 {
		p += "/versions/" + strconv.Itoa(version)
	}
	return p, nil
}

// callJSON sends in (if not nil) as JSON and decodes a 2xx answer into out
// (if not nil).
func (c *Client) callJSON(ctx context.Context, method, path string, q url.Values, in, out any) error {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return fmt.Errorf("api: encoding %s %s: %w", method, path, err)
		}
	}
	var since time.Time // the first answer without a leader
	wait := 100 * time.Millisecond
	for {
		err := c.callOnce(ctx, method, path, q, body, out)
		var se *StatusError
		if err == nil || c.leaderWait <= 0 || !errors.As(err, &se) || se.Code != http.StatusServiceUnavailable || se.Reason != ReasonNoLeader {
			return err
		}
		if since.IsZero() {
			since = time.Now()
			if c.noticeWait != nil {
				c.noticeWait(c.leaderWait)
			}
		}
		left := c.leaderWait - time.Since(since)
		if left <= 0 {
			return fmt.Errorf("%w (no leader after waiting %v)", err, c.leaderWait.Round(100*time.Millisecond))
		}
		t := time.NewTimer(min(wait, left))
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		wait = min(2*wait, time.Second)
	}
}

// callOnce makes one call (following redirects) within the client's
// timeout and decodes a 2xx answer into out.
func (c *Client) callOnce(ctx context.Context, method, path string, q url.Values, body []byte, out any) error {
	ctx, cl := c.start(ctx)
	defer cl.end()
	resp, err := c.send(ctx, cl, method, path, q, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		if ctx.Err() != nil {
			return c.transportError(ctx, cl, method, path, err)
		}
		return fmt.Errorf("api: decoding the coordinator's answer to %s %s: %w", method, path, err)
	}
	return nil
}

// send makes one request and returns the answer if it is a 2xx; any
// other answer becomes a *StatusError.
func (c *Client) send(ctx context.Context, cl *call, method, path string, q url.Values, body []byte) (*http.Response, error) {
	// path's segments are escaped already.
	u := *c.base
	u.RawPath = c.base.EscapedPath() + path
	var err error
	if u.Path, err = url.PathUnescape(u.RawPath); err != nil {
		return nil, fmt.Errorf("api: %s %s: %w", method, path, err)
	}
	if q != nil {
		u.RawQuery = q.Encode()
	}
	var r io.Reader
	if body != nil {
		// A *bytes.Reader sets GetBody, so a POST can follow a 307.
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), r)
	if err != nil {
		return nil, fmt.Errorf("api: %s %s: %w", method, path, err)
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, c.transportError(ctx, cl, method, path, err)
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return resp, nil
	}
	defer resp.Body.Close()
	se := decodeStatusError(resp)
	se.Server = c.base.String()
	if se.Code == http.StatusBadRequest && resp.Request.URL.Scheme == "http" && strings.Contains(se.Msg, "HTTP request to an HTTPS server") {
		return nil, fmt.Errorf("%w: the coordinator at %s serves HTTPS: use https://%s with the cluster's CA (maas login --server https://%s --ca ca.crt ...)",
			ErrTLS, c.base, resp.Request.URL.Host, resp.Request.URL.Host)
	}
	return nil, se
}

// decodeStatusError reads an error answer's api.Error body.
func decodeStatusError(resp *http.Response) *StatusError {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	se := &StatusError{Code: resp.StatusCode}
	var e Error
	if json.Unmarshal(b, &e) == nil && e.Error != "" {
		se.Msg, se.Field, se.Reason, se.Need, se.Role = e.Error, e.Field, e.Reason, e.Need, e.Role
		return se
	}
	se.Msg = strings.TrimSpace(string(b))
	if se.Msg == "" || len(se.Msg) > 200 {
		se.Msg = http.StatusText(resp.StatusCode)
	}
	return se
}

// transportError explains why no answer came: the caller gave up, the
// coordinator was too slow, or it could not be reached.
func (c *Client) transportError(ctx context.Context, cl *call, method, path string, err error) error {
	if cl.parent.Err() != nil {
		return fmt.Errorf("api: %s %s: %w", method, path, context.Cause(cl.parent))
	}
	if context.Cause(ctx) == errCallTimeout {
		return fmt.Errorf("%w: the coordinator at %s did not answer %s %s within %v; check that it is healthy, or point --server or MAAS_SERVER at another coordinator",
			ErrTimeout, c.base, method, path, c.timeout)
	}
	if errors.Is(err, errRedirectLoop) {
		return fmt.Errorf("api: %s %s: the coordinators redirect in a loop (%w); check that they agree on a leader with `maas cluster status`", method, path, err)
	}
	addr, target := c.base.String(), c.base
	var ue *url.Error
	if errors.As(err, &ue) {
		if u, perr := url.Parse(ue.URL); perr == nil && u.Host != "" && u.Host != c.base.Host {
			addr = fmt.Sprintf("%s://%s (where %s redirected)", u.Scheme, u.Host, c.base)
			target = u
		}
		err = ue.Err
	}
	if terr := tlsError(addr, err); terr != nil {
		return terr
	}
	if target.Scheme == "https" {
		if terr := tlsError(addr, c.probeTLS(target.Host, err)); terr != nil {
			return terr
		}
	}
	return fmt.Errorf("%w: the coordinator at %s is unreachable (%w); start a local cluster with `maas local`, or point --server or MAAS_SERVER at a running coordinator",
		ErrUnreachable, addr, err)
}

// tlsError explains a failed TLS handshake with the coordinator at addr,
// or returns nil when err is not one.
func tlsError(addr string, err error) error {
	var (
		verr *tls.CertificateVerificationError
		rec  tls.RecordHeaderError
		oerr *net.OpError
	)
	switch {
	case errors.As(err, &verr):
		return fmt.Errorf("%w: the certificate of the coordinator at %s is not one this client trusts (%w); give the CA of its cluster: maas login --ca ca.crt (from `maas cluster init`)",
			ErrTLS, addr, err)
	case errors.As(err, &oerr) && oerr.Op == "remote error" && strings.Contains(oerr.Err.Error(), "certificate"):
		// The server's TLS alert: a certificate required, bad or of an
		// unknown CA.
		return fmt.Errorf("%w: the coordinator at %s refused this client's certificate (%w); it wants one signed by the cluster's CA: maas login --cert host-NAME.crt --key host-NAME.key",
			ErrTLS, addr, err)
	case errors.As(err, &rec), errors.Is(err, http.ErrSchemeMismatch):
		return fmt.Errorf("%w: the coordinator at %s does not speak TLS (%w); use http:// for it", ErrTLS, addr, err)
	}
	return nil
}

// probeTLS looks for the reason a call to the https coordinator at host
// failed with err, when the transport hid it: a TLS 1.3 server refuses a
// client's certificate after the handshake, so the client may see only a
// broken pipe or a failed HTTP/2 preface. It shakes hands again and
// returns the server's alert, if it sends one within a second; nil
// otherwise, or when err is a failed dial.
func (c *Client) probeTLS(host string, err error) error {
	var oerr *net.OpError
	if errors.As(err, &oerr) && oerr.Op == "dial" {
		return nil
	}
	cfg := &tls.Config{}
	if c.tls != nil {
		cfg = c.tls.Clone()
	}
	cfg.NextProtos = nil
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	conn, derr := (&tls.Dialer{Config: cfg}).DialContext(ctx, "tcp", host)
	if derr != nil {
		return nil
	}
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(time.Second))
	_, rerr := conn.Read(make([]byte, 1))
	if errors.As(rerr, &oerr) && oerr.Op == "remote error" {
		return rerr
	}
	return nil
}

// errCallTimeout is the cause a call's context ends with when the
// coordinator stays silent for the client's timeout.
var errCallTimeout = errors.New("api: call timed out")

// call is the timer of one call in flight: it cancels the call's context
// after the client's timeout, counted from the start or the last byte
// received (touch).
type call struct {
	parent  context.Context
	cancel  context.CancelCauseFunc
	timer   *time.Timer
	timeout time.Duration
}

func (c *Client) start(parent context.Context) (context.Context, *call) {
	ctx, cancel := context.WithCancelCause(parent)
	cl := &call{parent: parent, cancel: cancel, timeout: c.timeout}
	cl.timer = time.AfterFunc(c.timeout, func() { cancel(errCallTimeout) })
	return ctx, cl
}

func (cl *call) touch() { cl.timer.Reset(cl.timeout) }

func (cl *call) end() {
	cl.timer.Stop()
	cl.cancel(context.Canceled)
}

// idleReader restarts the call's timer whenever bytes arrive and keeps
// the read error, to tell it from the writer's.
type idleReader struct {
	r   io.Reader
	cl  *call
	err error
}

func (r *idleReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if n > 0 {
		r.cl.touch()
	}
	if err != nil && err != io.EOF {
		r.err = err
	}
	return n, err
}
