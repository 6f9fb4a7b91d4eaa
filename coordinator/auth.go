package coordinator

import (
	"errors"
	"fmt"
	"net/http"

	"go.uber.org/zap"

	"github.com/maas-ml/maas/internal/api"
	"github.com/maas-ml/maas/internal/auth"
)

// TokenChecker looks up the API token of a call: the token's description
// when it is known, unexpired and its role allows need, else an error
// matching auth.ErrNoToken, ErrUnknownToken, ErrExpiredToken or
// ErrForbidden. *auth.Tokens (tokens.json) is one.
type TokenChecker interface {
	Lookup(token string, need auth.Role) (auth.Token, error)
}

var _ TokenChecker = (*auth.Tokens)(nil)

// authorize serves h to calls whose bearer token allows need, when the
// node checks tokens (Config.Tokens); it answers the others 401 (no,
// unknown or expired token, with WWW-Authenticate: Bearer) or 403 (a role
// too low), with an api.Error whose Reason, Need and Role say why.
func (n *Node) authorize(need auth.Role, h http.HandlerFunc) http.HandlerFunc {
	if n.cfg.Tokens == nil {
		return h
	}
	return func(w http.ResponseWriter, r *http.Request) {
		tok := uiToken(r) // the dashboard's session, or the bearer token
		// Any valid token reads; looking it up first tells a bad token
		// from a role too low, and names the token's role in a 403.
		info, err := n.cfg.Tokens.Lookup(tok, auth.RoleRead)
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
		case errors.Is(err, auth.ErrNoToken):
			e.Reason = api.ReasonNoToken
			e.Error = `no API token: this coordinator wants "Authorization: Bearer TOKEN" on every call`
		case errors.Is(err, auth.ErrExpiredToken):
			e.Reason = api.ReasonExpiredToken
			e.Error = auth.Describe(err) + "; ask for a new token"
		default: // ErrUnknownToken, or a checker's own error
			e.Reason = api.ReasonUnknownToken
			e.Error = "unknown API token: it is not one of this cluster's tokens"
		}
		n.log.Info("API call refused", zap.String("method", r.Method), zap.String("path", r.URL.Path),
			zap.String("remote", r.RemoteAddr), zap.String("reason", e.Reason))
		if code == http.StatusUnauthorized {
			auth.Challenge(w)
		}
		writeJSON(w, code, e)
	}
}
