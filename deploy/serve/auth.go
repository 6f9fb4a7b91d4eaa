package serve

import (
	"crypto/subtle"
	"errors"
	"net/http"
	"strings"

	"github.com/maas-ml/maas/internal/auth"
)

// Reasons a request is refused, the label of the auth refusals metric.
const (
	refusedNoToken  = "no_token"  // no "Authorization: Bearer TOKEN"
	refusedBadToken = "bad_token" // a token refused: unknown, expired, …
)

// guarded is the endpoint's route table for tokens: whether a request to
// path needs one. The health checks are open; inference, model and server
// metadata and /metrics need a token (with Config.CheckToken, one of the
// read role or above). The server has no endpoint that loads or unloads
// models (they come from model directories, the coordinator's index and
// NATS); one would need the admin role.
func guarded(path string) bool {
	return !strings.HasPrefix(path, "/v2/health/")
}

// authenticate checks the bearer token of every guarded request, with
// Config.CheckToken or against the list Config.Tokens, and answers 401
// with WWW-Authenticate: Bearer to one without a good token, counting the
// refusal.
func (s *Server) authenticate(next http.Handler) http.Handler {
	var check func(token string) error
	switch {
	case s.cfg.CheckToken != nil:
		check = s.cfg.CheckToken
	case len(s.cfg.Tokens) > 0:
		check = listed(s.cfg.Tokens)
	default:
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !guarded(r.URL.Path) {
			next.ServeHTTP(w, r)
			return
		}
		token := auth.BearerToken(r)
		reason, msg := refusedNoToken, `serve: no API token: send "Authorization: Bearer TOKEN"`
		if token != "" {
			err := check(token)
			if err == nil {
				next.ServeHTTP(w, r)
				return
			}
			reason, msg = refusedBadToken, "serve: "+auth.Describe(err)+`: send "Authorization: Bearer TOKEN" with a token this server accepts`
		}
		s.met.authRefusals.WithLabelValues(reason).Inc()
		auth.Challenge(w)
		writeJSON(w, http.StatusUnauthorized, ErrorResponse{Error: msg})
	})
}

// errWrongToken is the refusal of a token not in Config.Tokens.
var errWrongToken = errors.New("wrong bearer token")

// listed checks a token against a plain list, each comparison in
// constant time.
func listed(list []string) func(token string) error {
	tokens := make([][]byte, len(list))
	for i, t := range list {
		tokens[i] = []byte(t)
	}
	return func(token string) error {
		match := 0
		for _, t := range tokens {
			match |= subtle.ConstantTimeCompare([]byte(token), t)
		}
		if match != 1 {
			return errWrongToken
		}
		return nil
	}
}
