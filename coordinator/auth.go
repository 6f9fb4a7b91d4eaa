package coordinator

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"go.uber.org/zap"

	"github.com/maas-ml/maas/deploy/cluster"
	"github.com/maas-ml/maas/internal/api"
)

// TokenChecker looks up the API token of a call: the token's description
// when it is known, unexpired and its role allows need, else an error
// matching cluster.ErrNoToken, ErrUnknownToken, ErrExpiredToken or
// ErrForbidden. *cluster.Tokens (tokens.json) is one.
type TokenChecker interface {
	Lookup(token string, need cluster.Role) (cluster.Token, error)
}

var _ TokenChecker = (*cluster.Tokens)(nil)

// authorize serves h to calls whose bearer token allows need, when the
// node checks tokens (Config.Tokens); it answers the others 401 (no,
// unknown or expired token, with WWW-Authenticate: Bearer) or 403 (a role
// too low), with an api.Error whose Reason, Need and Role say why.
func (n *Node) authorize(need cluster.Role, h http.HandlerFunc) http.HandlerFunc {
	if n.cfg.Tokens == nil {
		return h
	}
	return func(w http.ResponseWriter, r *http.Request) {
		tok := bearerToken(r)
		// Any valid token reads; looking it up first tells a bad token
		// from a role too low, and names the token's role in a 403.
		info, err := n.cfg.Tokens.Lookup(tok, cluster.RoleRead)
		if err == nil && info.Role.Allows(need) {
			h(w, r)
			return
		}
		e := api.Error{Need: string(need)}
		code := http.StatusUnauthorized
		switch {
		case err == nil:
			code = http.StatusForbidden
			e.Reason, e.Role = api.ReasonForbidden, string(info.Role)
			e.Error = fmt.Sprintf("forbidden: %s %s needs a token with the %s role; token %q has the %s role",
				r.Method, r.URL.Path, need, info.Name, info.Role)
		case errors.Is(err, cluster.ErrNoToken):
			e.Reason = api.ReasonNoToken
			e.Error = `no API token: this coordinator wants "Authorization: Bearer TOKEN" on every call`
		case errors.Is(err, cluster.ErrExpiredToken):
			e.Reason = api.ReasonExpiredToken
			e.Error = strings.TrimPrefix(err.Error(), "cluster: ") + "; ask for a new token"
		default: // ErrUnknownToken, or a checker's own error
			e.Reason = api.ReasonUnknownToken
			e.Error = "unknown API token: it is not one of this cluster's tokens"
		}
		n.log.Info("API call refused", zap.String("method", r.Method), zap.String("path", r.URL.Path),
			zap.String("remote", r.RemoteAddr), zap.String("reason", e.Reason))
		if code == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Bearer realm="maas"`)
		}
		writeJSON(w, code, e)
	}
}

// bearerToken is the token of the call's "Authorization: Bearer TOKEN"
// header, or "" when there is none.
func bearerToken(r *http.Request) string {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(tok)
}
