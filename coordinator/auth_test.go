package coordinator_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/maas-ml/maas/coordinator"
	"github.com/maas-ml/maas/deploy/cluster"
	"github.com/maas-ml/maas/deploy/cluster/clustertest"
	"github.com/maas-ml/maas/internal/api"
	"github.com/maas-ml/maas/internal/auth"
)

// securedNode starts a coordinator whose API speaks TLS with tc and
// checks tokens (nil: none), on NATS at url as the cluster's coordinator
// user.
func securedNode(t *testing.T, s *clustertest.Secrets, url, id string, bootstrap bool, tc *tls.Config, tokens coordinator.TokenChecker) (*coordinator.Node, coordinator.Config) {
	t.Helper()
	cfg := coordinator.DefaultConfig()
	cfg.ID, cfg.RaftAddr, cfg.HTTPAddr = id, freeAddr(t), "127.0.0.1:0"
	cfg.DataDir, cfg.Bootstrap = filepath.Join(t.TempDir(), id), bootstrap
	cfg.HeartbeatTimeout, cfg.ElectionTimeout = 300*time.Millisecond, 300*time.Millisecond
	cfg.TLS, cfg.Tokens = tc, tokens
	seed, err := nats.NkeyOptionFromSeed(s.Seed(t, cluster.KindCoordinator))
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(url, seed, nats.Secure(s.ClientTLS(t, false)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	n, err := coordinator.Open(cfg, nc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if bootstrap {
		if err := n.WaitForLeader(ctx); err != nil {
			t.Fatal(err)
		}
	}
	return n, cfg
}

// call sends one request with token (none if "") and decodes an error
// answer.
func call(t *testing.T, hc *http.Client, method, url, token, body string) (*http.Response, api.Error) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e api.Error
	if resp.StatusCode >= 400 {
		json.NewDecoder(resp.Body).Decode(&e)
	}
	return resp, e
}

// TestAPITokens: a coordinator with TLS and tokens.json refuses every call
// without a valid token of its route's role, saying why, and serves those
// with one.
func TestAPITokens(t *testing.T) {
	s := clustertest.New(t)
	tokens := s.Tokens(t)
	tokens.Add("expired-token", auth.Token{Name: "old", Role: auth.RoleAdmin, Expires: time.Now().Add(-time.Hour)})
	n, _ := securedNode(t, s, s.StartNATS(t), "c1", true, s.ServerTLS(t, false), tokens)
	base := "https://" + n.HTTPAddr()
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: s.ClientTLS(t, false)}}
	read, submit, admin := s.Token(t, auth.RoleRead), s.Token(t, auth.RoleSubmit), s.Token(t, auth.RoleAdmin)

	for _, tc := range []struct {
		name, method, path, token string
		code                      int
		reason, need, role        string
	}{
		{"no token", "GET", "/v1/jobs", "", 401, api.ReasonNoToken, "read", ""},
		{"unknown token", "GET", "/v1/jobs", "not-a-token", 401, api.ReasonUnknownToken, "read", ""},
		{"expired token", "GET", "/v1/jobs", "expired-token", 401, api.ReasonExpiredToken, "read", ""},
		{"no token for the cluster", "GET", "/v1/cluster", "", 401, api.ReasonNoToken, "read", ""},
		{"read reads", "GET", "/v1/jobs", read, 200, "", "", ""},
		{"read reads the cluster", "GET", "/v1/cluster", read, 200, "", "", ""},
		{"read reads raft state", "GET", "/v1/raft/state", read, 200, "", "", ""},
		{"read submits", "POST", "/v1/jobs", read, 403, api.ReasonForbidden, "submit", "read"},
		{"read cancels", "POST", "/v1/jobs/j1/cancel", read, 403, api.ReasonForbidden, "submit", "read"},
		{"submit cancels", "POST", "/v1/jobs/j1/cancel", submit, 404, "", "", ""},
		{"submit submits", "POST", "/v1/jobs", submit, 400, "", "", ""}, // the empty spec, past the token check
		{"submit joins", "POST", "/v1/raft/join", submit, 403, api.ReasonForbidden, "admin", "submit"},
		{"admin joins", "POST", "/v1/raft/join", admin, 400, "", "", ""}, // the empty join, past the token check
		{"submit removes a coordinator", "POST", "/v1/raft/remove", submit, 403, api.ReasonForbidden, "admin", "submit"},
		{"admin removes a coordinator", "POST", "/v1/raft/remove", admin, 400, "", "", ""}, // no id, past the token check
		{"admin reads", "GET", "/v1/models", admin, 200, "", "", ""},
	} {
		resp, e := call(t, hc, tc.method, base+tc.path, tc.token, "{}")
		if resp.StatusCode != tc.code || e.Reason != tc.reason || tc.code == 403 && (e.Need != tc.need || e.Role != tc.role) {
			t.Errorf("%s: %d %+v, want %d reason %q need %q role %q", tc.name, resp.StatusCode, e, tc.code, tc.reason, tc.need, tc.role)
		}
		if got := resp.Header.Get("WWW-Authenticate"); (tc.code == 401) != strings.HasPrefix(got, "Bearer") {
			t.Errorf("%s: WWW-Authenticate %q with %d", tc.name, got, resp.StatusCode)
		}
		if tc.code == 403 && (!strings.Contains(e.Error, tc.need) || !strings.Contains(e.Error, "has the "+tc.role+" role")) {
			t.Errorf("%s: %q does not name the role needed and the token's", tc.name, e.Error)
		}
	}

	// The client sees the same refusals as errors to match.
	c, err := api.NewClient(base, api.WithTLSConfig(s.ClientTLS(t, false)), api.WithToken(read))
	if err != nil {
		t.Fatal(err)
	}
	var se *api.StatusError
	if _, err := c.Submit(t.Context(), api.SubmitRequest{Spec: "name: x"}); !errors.Is(err, api.ErrForbidden) || !errors.As(err, &se) || se.Need != "submit" || se.Role != "read" {
		t.Errorf("submit with a read token: %v (%+v)", err, se)
	}
	if _, err := c.Jobs(t.Context()); err != nil {
		t.Errorf("jobs with a read token: %v", err)
	}
}

// TestAPITLS: plain HTTP to the TLS port, a client trusting another CA,
// and a client without a certificate for a coordinator with --client-ca
// all fail, with a TLS error that says what to do.
func TestAPITLS(t *testing.T) {
	s, other := clustertest.New(t), clustertest.New(t)
	nurl := s.StartNATS(t)
	n, _ := securedNode(t, s, nurl, "c1", true, s.ServerTLS(t, false), nil)

	plain, err := api.NewClient("http://" + n.HTTPAddr())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := plain.Jobs(t.Context()); !errors.Is(err, api.ErrTLS) || !strings.Contains(err.Error(), "https://"+n.HTTPAddr()) {
		t.Errorf("plain HTTP to the TLS port: %v, want ErrTLS telling to use https", err)
	}
	foreign, err := api.NewClient("https://"+n.HTTPAddr(), api.WithTLSConfig(other.ClientTLS(t, false)))
	if err != nil {
		t.Fatal(err)
	}
	var verr *tls.CertificateVerificationError
	if _, err := foreign.Jobs(t.Context()); !errors.Is(err, api.ErrTLS) || !errors.As(err, &verr) || !strings.Contains(err.Error(), "--ca") {
		t.Errorf("a client of another CA: %v, want a verification error and the --ca hint", err)
	}

	m, _ := securedNode(t, s, nurl, "m1", true, s.ServerTLS(t, true), nil)
	noCert, err := api.NewClient("https://"+m.HTTPAddr(), api.WithTLSConfig(s.ClientTLS(t, false)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := noCert.Jobs(t.Context()); !errors.Is(err, api.ErrTLS) {
		t.Errorf("mutual TLS without a client certificate: %v, want ErrTLS", err)
	}
	withCert, err := api.NewClient("https://"+m.HTTPAddr(), api.WithTLSConfig(s.ClientTLS(t, true)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := withCert.Jobs(t.Context()); err != nil {
		t.Errorf("mutual TLS with the host's certificate: %v", err)
	}
}

// TestFollowerRedirectSecured: a coordinator joins a TLS and token cluster
// through the API with an admin token; a follower checks the token, then
// redirects to the leader over https, and the caller's token goes along.
func TestFollowerRedirectSecured(t *testing.T) {
	s := clustertest.New(t)
	nurl := s.StartNATS(t)
	tokens := s.Tokens(t)
	leader, _ := securedNode(t, s, nurl, "c1", true, s.ServerTLS(t, false), tokens)
	follower, fcfg := securedNode(t, s, nurl, "c2", false, s.ServerTLS(t, false), tokens)
	tc := s.ClientTLS(t, false)
	client := func(addr string, r auth.Role) *api.Client {
		c, err := api.NewClient("https://"+addr, api.WithTLSConfig(tc), api.WithToken(s.Token(t, r)))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	req := api.JoinRequest{ID: "c2", RaftAddr: fcfg.RaftAddr, HTTPAddr: follower.HTTPAddr()}
	if err := client(leader.HTTPAddr(), auth.RoleSubmit).Join(t.Context(), req); !errors.Is(err, api.ErrForbidden) {
		t.Fatalf("join with a submit token: %v, want 403", err)
	}
	if err := client(leader.HTTPAddr(), auth.RoleAdmin).Join(t.Context(), req); err != nil {
		t.Fatalf("join with an admin token: %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := follower.WaitForLeader(ctx); err != nil {
		t.Fatal(err)
	}

	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: tc}}
	f := "https://" + follower.HTTPAddr()
	resp, _ := call(t, hc, "GET", f+"/v1/jobs", s.Token(t, auth.RoleRead), "")
	if resp.StatusCode != 200 || resp.Request.URL.Scheme != "https" || resp.Request.URL.Host != leader.HTTPAddr() {
		t.Errorf("GET on the follower: %d from %s, want 200 from the leader https://%s", resp.StatusCode, resp.Request.URL, leader.HTTPAddr())
	}
	resp, e := call(t, hc, "POST", f+"/v1/jobs", s.Token(t, auth.RoleRead), `{"spec": "name: x"}`)
	if resp.StatusCode != 403 || resp.Request.URL.Host != follower.HTTPAddr() {
		t.Errorf("POST with a read token on the follower: %d %+v from %s, want its own 403", resp.StatusCode, e, resp.Request.URL.Host)
	}
	resp, e = call(t, hc, "POST", f+"/v1/jobs", "", `{"spec": "name: x"}`)
	if resp.StatusCode != 401 || resp.Request.URL.Host != follower.HTTPAddr() {
		t.Errorf("POST without a token on the follower: %d %+v from %s, want its own 401", resp.StatusCode, e, resp.Request.URL.Host)
	}
	// The API client sends the token again to the leader it is sent to:
	// the leader's 400 for a bad spec proves the call got past its check.
	_, err := client(follower.HTTPAddr(), auth.RoleSubmit).Submit(t.Context(), api.SubmitRequest{Spec: "name: x\nepochs: -1\n"})
	if !errors.Is(err, api.ErrBadRequest) {
		t.Errorf("submit through the follower: %v, want the leader's 400", err)
	}
	if _, err := client(follower.HTTPAddr(), auth.RoleRead).Jobs(t.Context()); err != nil {
		t.Errorf("jobs through the follower: %v", err)
	}
}
