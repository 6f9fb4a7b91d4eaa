package auth

import (
	"net/http"
	"strings"
)

// BearerToken is the token of the request's "Authorization: Bearer TOKEN"
// header, or "" when there is none.
func BearerToken(r *http.Request) string {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(tok)
}

// Challenge asks the client of a refused request for a bearer token
// (RFC 6750): the WWW-Authenticate header of a 401.
func Challenge(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="maas"`)
}
