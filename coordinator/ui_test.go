package coordinator_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/maas-ml/maas/coordinator"
	"github.com/maas-ml/maas/internal/api"
	"github.com/maas-ml/maas/internal/auth"
	"github.com/maas-ml/maas/internal/testcluster"
)

// TestDashboardSession: with API tokens the dashboard answers 401 and a
// login form until a read token is given (?token= or the form); the
// session cookie then reads the API, on a follower too (which answers the
// dashboard's leader-only calls itself, from the leader), but never acts
// beyond its role nor for a request without the dashboard's header. The
// serving endpoint's calls go through /ui/serve/ with the session's token;
// /v1/cluster reports each coordinator's term and applied index.
func TestDashboardSession(t *testing.T) {
	url0 := testcluster.StartNATS(t).ClientURL()
	tk := &auth.Tokens{}
	read, submit := "read-token-0123456789", "submit-token-0123456789"
	tk.Add(read, auth.Token{Name: "dash", Role: auth.RoleRead})
	tk.Add(submit, auth.Token{Name: "ci", Role: auth.RoleSubmit})

	var mu sync.Mutex
	var seen []string // the serving endpoint's requests: method, path, token
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Method+" "+r.URL.Path+" "+auth.BearerToken(r)+" cookie="+r.Header.Get("Cookie"))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"name":"m","versions":["2","1"]}`)
	}))
	defer srv.Close()
	adjust := func(c *coordinator.Config) { c.Tokens, c.ServeURL = tk, srv.URL }
	leader, _, _ := startSingle(t, url0, adjust)
	fcfg := coordinator.DefaultConfig()
	fcfg.ID, fcfg.RaftAddr, fcfg.HTTPAddr, fcfg.DataDir = "c2", freeAddr(t), "127.0.0.1:0", t.TempDir()
	fcfg.HeartbeatTimeout, fcfg.ElectionTimeout = 300*time.Millisecond, 300*time.Millisecond
	adjust(&fcfg)
	follower := openNode(t, fcfg, url0)
	t.Cleanup(func() { follower.Close() })
	if err := leader.Join(t.Context(), "c2", fcfg.RaftAddr, follower.HTTPAddr()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the follower to know the leader", 10*time.Second, func() bool {
		_, id := follower.Raft().LeaderWithID()
		return id == "c1"
	})
	L, F := "http://"+leader.HTTPAddr(), "http://"+follower.HTTPAddr()

	get := func(hc *http.Client, u string, hdr ...string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, u, nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	plain := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, u := range []string{L + "/ui/", L + "/ui/app.js", L + "/ui/?token=wrong"} {
		resp, body := get(plain, u)
		if resp.StatusCode != 401 || !strings.Contains(body, `action="/ui/login"`) || resp.Header.Get("WWW-Authenticate") == "" {
			t.Errorf("GET %s without a valid token: %s, want 401 with the login form", u, resp.Status)
		}
	}
	if _, body := get(plain, L+"/ui/?token=wrong"); !strings.Contains(body, "refused") {
		t.Errorf("a wrong token's login page does not say it was refused")
	}

	// ?token= logs in: a strict, HTTP-only session cookie, and the
	// token leaves the address.
	resp, _ := get(plain, L+"/ui/?token="+read)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/ui/" {
		t.Fatalf("login with ?token=: %s to %q, want 303 to /ui/", resp.Status, resp.Header.Get("Location"))
	}
	ck := resp.Cookies()
	if len(ck) != 1 || ck[0].Value != read || !ck[0].HttpOnly || ck[0].SameSite != http.SameSiteStrictMode {
		t.Fatalf("session cookie %+v", ck)
	}
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar}
	resp, body := get(hc, L+"/ui/?token="+read)
	if resp.StatusCode != 200 || !strings.Contains(body, `src="app.js"`) || resp.Request.URL.RawQuery != "" {
		t.Fatalf("the dashboard after login: %s %s", resp.Status, resp.Request.URL)
	}
	if resp, _ := get(hc, L+"/v1/jobs"); resp.StatusCode != 200 {
		t.Errorf("GET /v1/jobs with the session: %s", resp.Status)
	}
	post := func(hc *http.Client, u string, hdr ...string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(`{}`))
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if r := post(hc, L+"/v1/jobs/x/cancel"); r.StatusCode != 401 {
		t.Errorf("a POST with the session cookie but not the dashboard's header: %s, want 401", r.Status)
	}
	if r := post(hc, L+"/v1/jobs/x/cancel", "X-Maas-UI", "1"); r.StatusCode != 403 {
		t.Errorf("cancel with a read session: %s, want 403", r.Status)
	}

	// The follower answers the dashboard's leader-only call itself; an
	// API client's is redirected.
	resp, body = get(hc, F+"/v1/jobs", "X-Maas-UI", "1")
	if resp.StatusCode != 200 || resp.Request.URL.Host != follower.HTTPAddr() || strings.TrimSpace(body) != "[]" {
		t.Errorf("the dashboard's GET /v1/jobs on the follower: %s from %s: %s", resp.Status, resp.Request.URL.Host, body)
	}
	resp, _ = get(plain, F+"/v1/jobs", "Authorization", "Bearer "+read)
	if resp.StatusCode != http.StatusTemporaryRedirect {
		t.Errorf("an API client's GET /v1/jobs on the follower: %s, want 307", resp.Status)
	}

	// The serving endpoint, through /ui/serve/, with the session's token
	// and without the cookie.
	resp, body = get(hc, F+"/ui/config")
	var cfg struct {
		Node  string `json:"node"`
		Auth  bool   `json:"auth"`
		Serve bool   `json:"serve"`
	}
	if json.Unmarshal([]byte(body), &cfg); resp.StatusCode != 200 || cfg.Node != "c2" || !cfg.Auth || !cfg.Serve {
		t.Errorf("/ui/config: %s %s", resp.Status, body)
	}
	if resp, body := get(hc, L+"/ui/serve/v2/models/m"); resp.StatusCode != 200 || !strings.Contains(body, `"versions"`) {
		t.Errorf("model metadata through the dashboard: %s %s", resp.Status, body)
	}
	if r := post(hc, L+"/ui/serve/v2/models/m/infer", "X-Maas-UI", "1"); r.StatusCode != 200 {
		t.Errorf("inference through the dashboard: %s", r.Status)
	}
	if r := post(plain, L+"/ui/serve/v2/models/m/infer", "Authorization", "Bearer "+submit); r.StatusCode != 403 {
		t.Errorf("a POST to /ui/serve/ that is not the dashboard's: %s, want 403", r.Status)
	}
	mu.Lock()
	want := []string{"GET /v2/models/m " + read + " cookie=", "POST /v2/models/m/infer " + read + " cookie="}
	if strings.Join(seen, "\n") != strings.Join(want, "\n") {
		t.Errorf("the serving endpoint saw\n%s\nwant\n%s", strings.Join(seen, "\n"), strings.Join(want, "\n"))
	}
	mu.Unlock()

	// Each coordinator's own Raft state, and the NATS connection.
	resp, body = get(hc, F+"/v1/cluster")
	var cs api.ClusterStatus
	if err := json.Unmarshal([]byte(body), &cs); err != nil || resp.StatusCode != 200 || len(cs.Nodes) != 2 {
		t.Fatalf("/v1/cluster: %s %s (%v)", resp.Status, body, err)
	}
	for _, n := range cs.Nodes {
		want := "Follower"
		if n.ID == "c1" {
			want = "Leader"
		}
		if n.Error != "" || n.State != want || n.Term == 0 || n.AppliedIndex == 0 {
			t.Errorf("coordinator %s in /v1/cluster: %+v, want state %s, a term and an applied index", n.ID, n, want)
		}
	}
	if cs.NATS == nil || !cs.NATS.Connected || !cs.NATS.JetStream || len(cs.NATS.Known) == 0 {
		t.Errorf("NATS in /v1/cluster: %+v", cs.NATS)
	}

	// Logging out drops the session.
	if r := post(hc, L+"/ui/logout"); r.StatusCode != 401 { // redirected to /ui/, now without a token
		t.Errorf("after logging out: %s, want the login form's 401", r.Status)
	}
	u, _ := url.Parse(L)
	if len(jar.Cookies(u)) != 0 {
		t.Errorf("the session cookie outlived the logout: %v", jar.Cookies(u))
	}
}
