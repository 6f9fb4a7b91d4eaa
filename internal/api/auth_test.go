package api

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestRefusals: a coordinator's 401 and 403 answers become StatusErrors
// that match ErrUnauthorized and ErrForbidden and carry the reason, the
// role needed, the token's role and the server.
func TestRefusals(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.Header.Get("Authorization") == "" {
			w.Header().Set("WWW-Authenticate", "Bearer")
			w.WriteHeader(http.StatusUnauthorized)
			json.NewEncoder(w).Encode(Error{Error: "no API token", Reason: ReasonNoToken, Need: "read"})
			return
		}
		w.WriteHeader(http.StatusForbidden)
		json.NewEncoder(w).Encode(Error{Error: "forbidden", Reason: ReasonForbidden, Need: "submit", Role: "read"})
	}))
	defer srv.Close()
	var se *StatusError
	_, err := newTestClient(t, srv.URL).Jobs(t.Context())
	if !errors.Is(err, ErrUnauthorized) || errors.Is(err, ErrForbidden) || !errors.As(err, &se) || se.Reason != ReasonNoToken || se.Server != srv.URL {
		t.Errorf("no token: %v (%+v)", err, se)
	}
	_, err = newTestClient(t, srv.URL, WithToken("t")).Submit(t.Context(), SubmitRequest{Spec: "x"})
	if !errors.Is(err, ErrForbidden) || !errors.As(err, &se) || se.Need != "submit" || se.Role != "read" {
		t.Errorf("role too low: %v (%+v)", err, se)
	}
}

// TestTLSErrors: plain HTTP to a TLS server and a server whose certificate
// the client does not trust fail with ErrTLS saying what to do;
// WithTLSConfig trusting the server's CA gets an answer.
func TestTLSErrors(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("[]"))
	}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "https://")
	if _, err := newTestClient(t, "http://"+host).Jobs(t.Context()); !errors.Is(err, ErrTLS) || !strings.Contains(err.Error(), "use https://"+host) {
		t.Errorf("plain HTTP to TLS: %v", err)
	}
	if _, err := newTestClient(t, srv.URL).Jobs(t.Context()); !errors.Is(err, ErrTLS) || !strings.Contains(err.Error(), "--ca") {
		t.Errorf("an untrusted certificate: %v", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	if _, err := newTestClient(t, srv.URL, WithTLSConfig(&tls.Config{RootCAs: pool})).Jobs(t.Context()); err != nil {
		t.Errorf("trusting the server's CA: %v", err)
	}
	if _, err := NewClient(srv.URL, WithTLSConfig(nil)); err == nil {
		t.Error("WithTLSConfig(nil) accepted")
	}
}
