package serve

import (
	"net/http"
	"testing"
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
	} {
		c := DefaultConfig()
		edit(&c)
		if _, err := New(c); err == nil {
			t.Errorf("New(%+v) accepted", c)
		}
	}
}
