package serve

import (
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/maas-ml/maas/deploy/cluster/clustertest"
	"github.com/maas-ml/maas/internal/auth"
)

func TestTokens(t *testing.T) {
	ts := newTestServer(t, func(c *Config) { c.Tokens = []string{"first", "s3cret"} }, nil)
	loadTiny(t, ts, nil)
	body := inferBody([]int{1, 784}, randomInput(1, 1), nil)
	for _, tc := range []struct {
		name, method, path, body, auth string
		code                           int
	}{
		{"no token", "POST", "/v2/models/tiny/infer", body, "", 401},
		{"wrong token", "POST", "/v2/models/tiny/infer", body, "Bearer nope", 401},
		{"not bearer", "POST", "/v2/models/tiny/infer", body, "Basic czNjcmV0", 401},
		{"token", "POST", "/v2/models/tiny/infer", body, "Bearer s3cret", 200},
		{"other token", "GET", "/v2/models/tiny", "", "Bearer first", 200},
		{"metadata without", "GET", "/v2", "", "", 401},
		{"metrics without", "GET", "/metrics", "", "", 401},
		{"live is open", "GET", "/v2/health/live", "", "", 200},
		{"ready is open", "GET", "/v2/health/ready", "", "", 200},
	} {
		var hdr []string
		if tc.auth != "" {
			hdr = []string{"Authorization", tc.auth}
		}
		code, b := ts.do(t, tc.method, tc.path, tc.body, hdr...)
		if code != tc.code {
			t.Errorf("%s: %d %s, want %d", tc.name, code, b, tc.code)
		}
	}
	req, _ := http.NewRequest(http.MethodGet, ts.url+"/v2", nil)
	resp, err := ts.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("WWW-Authenticate") == "" {
		t.Error("401 without WWW-Authenticate")
	}
}

func TestConfigValidate(t *testing.T) {
	for _, edit := range []func(*Config){
		func(c *Config) { c.MaxBodyBytes = 0 },
		func(c *Config) { c.RequestTimeout = -1 },
		func(c *Config) { c.Tokens = []string{""} },
		func(c *Config) { c.Tokens, c.CheckToken = []string{"t"}, func(string) error { return nil } },
		func(c *Config) { c.TLS = &tls.Config{} },
	} {
		c := DefaultConfig()
		edit(&c)
		if _, err := New(c); err == nil {
			t.Errorf("New(%+v) accepted", c)
		}
	}
}

// TestCheckToken: with the cluster's tokens.json (read role) every
// request but the health checks needs a valid token; a missing, unknown or
// expired token is refused with 401 saying which, and each refusal is
// counted.
func TestCheckToken(t *testing.T) {
	sec := clustertest.New(t)
	tokens := sec.Tokens(t)
	tokens.Add("old", auth.Token{Name: "old", Role: auth.RoleRead, Expires: time.Now().Add(-time.Minute)})
	ts := newTestServer(t, func(c *Config) {
		c.CheckToken = func(tok string) error { return tokens.Check(tok, auth.RoleRead) }
	}, nil)
	loadTiny(t, ts, nil)
	body := inferBody([]int{1, 784}, randomInput(1, 1), nil)
	bearer := func(r auth.Role) string { return "Bearer " + sec.Token(t, r) }
	for _, tc := range []struct {
		name, method, path, body, auth string
		code                           int
		says                           string
	}{
		{"no token", "POST", "/v2/models/tiny/infer", body, "", 401, "no API token"},
		{"unknown token", "POST", "/v2/models/tiny/infer", body, "Bearer nope", 401, "unknown API token"},
		{"expired token", "GET", "/v2/models/tiny", "", "Bearer old", 401, "expired"},
		{"read infers", "POST", "/v2/models/tiny/infer", body, bearer(auth.RoleRead), 200, ""},
		{"submit reads metadata", "GET", "/v2/models/tiny", "", bearer(auth.RoleSubmit), 200, ""},
		{"admin reads metrics", "GET", "/metrics", "", bearer(auth.RoleAdmin), 200, ""},
		{"server metadata needs a token", "GET", "/v2", "", "", 401, "no API token"},
		{"live is open", "GET", "/v2/health/live", "", "", 200, ""},
		{"ready is open", "GET", "/v2/health/ready", "", "", 200, ""},
	} {
		var hdr []string
		if tc.auth != "" {
			hdr = []string{"Authorization", tc.auth}
		}
		code, b := ts.do(t, tc.method, tc.path, tc.body, hdr...)
		if code != tc.code || !strings.Contains(string(b), tc.says) {
			t.Errorf("%s: %d %s, want %d saying %q", tc.name, code, b, tc.code, tc.says)
		}
	}
	for reason, want := range map[string]float64{refusedNoToken: 2, refusedBadToken: 2} {
		if got := testutil.ToFloat64(ts.met.authRefusals.WithLabelValues(reason)); got != want {
			t.Errorf("refusals{%s} = %v, want %v", reason, got, want)
		}
	}
}

// TestServeTLS: with Config.TLS the server speaks HTTPS only: a client of
// the cluster's CA is answered, plain HTTP and a client of another CA
// are not.
func TestServeTLS(t *testing.T) {
	sec, other := clustertest.New(t), clustertest.New(t)
	cfg := DefaultConfig()
	cfg.Backend, cfg.TLS = nopBackend(t), sec.ServerTLS(t, false)
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	defer func() {
		if err := s.Shutdown(t.Context()); err != nil {
			t.Error(err)
		}
		if err := <-served; err != nil {
			t.Error(err)
		}
	}()
	get := func(scheme string, tc *tls.Config) (*http.Response, error) {
		tr := &http.Transport{TLSClientConfig: tc}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr}).Get(scheme + "://" + ln.Addr().String() + "/v2/health/live")
		if err == nil {
			resp.Body.Close()
		}
		return resp, err
	}
	if resp, err := get("https", sec.ClientTLS(t, false)); err != nil || resp.StatusCode != 200 {
		t.Errorf("https with the cluster's CA: %v, %v", resp, err)
	}
	if resp, err := get("http", nil); err == nil && resp.StatusCode == 200 {
		t.Error("plain HTTP to the TLS port was answered 200")
	}
	var verr *tls.CertificateVerificationError
	if _, err := get("https", other.ClientTLS(t, false)); !errors.As(err, &verr) {
		t.Errorf("a client of another CA: %v, want a certificate verification error", err)
	}
}
