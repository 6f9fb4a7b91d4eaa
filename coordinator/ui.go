package coordinator

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/maas-ml/maas/coordinator/dashboard"
	"github.com/maas-ml/maas/internal/api"
	"github.com/maas-ml/maas/internal/auth"
)

// The dashboard (package dashboard) is served at /ui/ by every
// coordinator. Its pages read the API with the browser's session: a
// cookie holding the API token the user logged in with (/ui/?token=T or
// the login form), sent only to this origin (SameSite=Strict, HttpOnly).
// The API takes that cookie in place of the Authorization header for
// reading (GET) and, with the X-Maas-UI header that a cross-site page
// cannot send without a preflight this server never grants, for the
// dashboard's own calls (trying a model). Calls only the leader serves are
// forwarded to it by a follower (a redirect would lose a cookie bound to
// this host), and the serving endpoint (Config.ServeURL) is reached through
// /ui/serve/, so that the page talks to one origin only.

const (
	// uiCookie holds the dashboard's API token.
	uiCookie = "maas_token"
	// uiHeader marks the dashboard's own calls.
	uiHeader = "X-Maas-UI"
)

// uiToken is the request's API token: its bearer token, or else the
// dashboard's cookie where the request may use it.
func uiToken(r *http.Request) string {
	if tok := auth.BearerToken(r); tok != "" {
		return tok
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead && r.Header.Get(uiHeader) == "" {
		return ""
	}
	if c, err := r.Cookie(uiCookie); err == nil {
		return c.Value
	}
	return ""
}

// uiConfig is what the dashboard's pages learn of the coordinator at
// GET /ui/config.
type uiConfig struct {
	Node string `json:"node"`
	// Auth: the coordinator wants tokens (the page offers to log out).
	Auth bool `json:"auth"`
	// Serve: a serving endpoint is known, reachable under /ui/serve/.
	Serve    bool   `json:"serve"`
	ServeURL string `json:"serve_url,omitempty"`
}

func (n *Node) mountUI(mux *http.ServeMux) {
	files := http.StripPrefix("/ui/", http.FileServerFS(dashboard.FS()))
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/ui/", http.StatusFound)
	})
	mux.HandleFunc("GET /ui/", n.uiAuth(func(w http.ResponseWriter, r *http.Request) {
		// The pages change with the binary: revalidate them each time.
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'")
		files.ServeHTTP(w, r)
	}))
	mux.HandleFunc("POST /ui/login", n.handleUILogin)
	mux.HandleFunc("POST /ui/logout", func(w http.ResponseWriter, r *http.Request) {
		http.SetCookie(w, &http.Cookie{Name: uiCookie, Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode})
		http.Redirect(w, r, "/ui/", http.StatusSeeOther)
	})
	mux.HandleFunc("GET /ui/config", n.authorize(auth.RoleRead, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, uiConfig{Node: n.cfg.ID, Auth: n.cfg.Tokens != nil, Serve: n.cfg.ServeURL != "", ServeURL: n.cfg.ServeURL})
	}))
	serve := n.authorize(auth.RoleRead, n.handleUIServe)
	mux.HandleFunc("GET /ui/serve/v2/{path...}", serve)
	mux.HandleFunc("POST /ui/serve/v2/models/{path...}", serve)
}

// uiAuth serves the dashboard's files to a browser with a valid token.
// /ui/?token=T logs in: T is checked, kept in the session cookie and
// dropped from the address. Without a valid token the answer is 401 with
// a login form.
func (n *Node) uiAuth(h http.HandlerFunc) http.HandlerFunc {
	if n.cfg.Tokens == nil {
		return h
	}
	return func(w http.ResponseWriter, r *http.Request) {
		if tok := r.URL.Query().Get("token"); tok != "" {
			n.uiLogin(w, r, tok, r.URL.Path)
			return
		}
		if _, err := n.cfg.Tokens.Lookup(uiToken(r), auth.RoleRead); err == nil {
			h(w, r)
			return
		}
		msg := ""
		if uiToken(r) != "" {
			msg = "The session's token is no longer valid: log in again."
		}
		uiLoginPage(w, http.StatusUnauthorized, msg)
	}
}

func (n *Node) handleUILogin(w http.ResponseWriter, r *http.Request) {
	if n.cfg.Tokens == nil {
		http.Redirect(w, r, "/ui/", http.StatusSeeOther)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 4096)
	n.uiLogin(w, r, strings.TrimSpace(r.PostFormValue("token")), "/ui/")
}

// uiLogin checks tok (read role or above) and, if valid, keeps it in the
// session cookie and sends the browser to next; else it shows the login
// form again, saying why.
func (n *Node) uiLogin(w http.ResponseWriter, r *http.Request, tok, next string) {
	info, err := n.cfg.Tokens.Lookup(tok, auth.RoleRead)
	if err != nil {
		n.log.Info("dashboard login refused", zap.String("remote", r.RemoteAddr), zap.String("reason", auth.Describe(err)))
		uiLoginPage(w, http.StatusUnauthorized, "That token was refused: "+auth.Describe(err)+".")
		return
	}
	c := &http.Cookie{Name: uiCookie, Value: tok, Path: "/", HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode}
	if !info.Expires.IsZero() {
		c.Expires = info.Expires
	}
	http.SetCookie(w, c)
	if !strings.HasPrefix(next, "/ui/") {
		next = "/ui/"
	}
	http.Redirect(w, r, next, http.StatusSeeOther)
}

var loginTmpl = template.Must(template.New("login").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>maas — log in</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body { font-family: system-ui, sans-serif; background: #f7f8fa; color: #1d2330; margin: 0; }
main { max-width: 440px; margin: 12vh auto; background: #fff; border: 1px solid #e3e6ec; border-radius: 6px; padding: 24px 28px; }
h1 { margin-top: 0; } .error { color: #d64545; }
input { width: 100%; padding: 7px; margin: 6px 0 12px; border: 1px solid #cfd4dd; border-radius: 4px; }
button { background: #2f6fdf; color: #fff; border: 0; border-radius: 4px; padding: 7px 14px; }
</style></head>
<body><main>
<h1>maas</h1>
<p>This cluster wants an API token (the <b>read</b> role or above): the contents of
<code>read.token</code> from <code>maas cluster init</code>, or any token of its <code>tokens.json</code>.</p>
{{if .}}<p class="error" id="login-error">{{.}}</p>{{end}}
<form method="post" action="/ui/login">
<label for="token">API token</label>
<input id="token" name="token" type="password" autocomplete="current-password" autofocus required>
<button type="submit">Log in</button>
</form>
</main></body></html>
`))

// uiLoginPage answers the login form with code and msg (none: the first
// visit).
func uiLoginPage(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	auth.Challenge(w)
	w.WriteHeader(code)
	loginTmpl.Execute(w, msg)
}

// handleUIServe forwards the dashboard's calls to the serving endpoint:
// model metadata (GET) and inference (POST, from the dashboard only),
// with the caller's token.
func (n *Node) handleUIServe(w http.ResponseWriter, r *http.Request) {
	if n.cfg.ServeURL == "" {
		writeErr(w, http.StatusNotFound, "", "no serving endpoint is known to coordinator %s (start it with --serve-url)", n.cfg.ID)
		return
	}
	if r.Method == http.MethodPost && (r.Header.Get(uiHeader) == "" || !strings.HasSuffix(r.URL.Path, "/infer")) {
		writeErr(w, http.StatusForbidden, "", "only the dashboard's inference calls are forwarded")
		return
	}
	target, err := url.Parse(n.cfg.ServeURL)
	if err != nil {
		writeErr(w, http.StatusInternalServerError, "", "serving endpoint %q: %v", n.cfg.ServeURL, err)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 16<<20)
	n.forward(w, r, target, strings.TrimPrefix(r.URL.Path, "/ui/serve"), "the serving endpoint")
}

// forward proxies r to base+path with the caller's token as a bearer
// token; a failure answers 502 naming what could not be reached.
func (n *Node) forward(w http.ResponseWriter, r *http.Request, base *url.URL, path, what string) {
	tok := uiToken(r)
	p := &httputil.ReverseProxy{
		Transport: n.peerTransport(),
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme, pr.Out.URL.Host = base.Scheme, base.Host
			pr.Out.URL.Path, pr.Out.URL.RawPath = strings.TrimSuffix(base.Path, "/")+path, ""
			pr.Out.Host = base.Host
			pr.Out.Header.Del("Cookie")
			pr.Out.Header.Del(uiHeader)
			if tok != "" {
				pr.Out.Header.Set("Authorization", "Bearer "+tok)
			}
		},
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			writeErr(w, http.StatusBadGateway, "", "coordinator %s could not reach %s at %s: %v", n.cfg.ID, what, base.Host, err)
		},
	}
	p.ServeHTTP(w, r)
}

// forwardToLeader proxies a dashboard's call that only the leader
// serves.
func (n *Node) forwardToLeader(w http.ResponseWriter, r *http.Request, addr string) {
	u := &url.URL{Scheme: "http", Host: addr}
	if n.cfg.TLS != nil {
		u.Scheme = "https"
	}
	n.forward(w, r, u, r.URL.Path, "the leader")
}

// peerTransport is the HTTP transport to the other coordinators and the
// serving endpoint: it trusts the cluster's CA (from RaftTLS, or the
// API's client CAs) and presents this node's certificate.
func (n *Node) peerTransport() *http.Transport {
	n.peerOnce.Do(func() {
		t := http.DefaultTransport.(*http.Transport).Clone()
		switch {
		case n.cfg.RaftTLS != nil:
			t.TLSClientConfig = n.cfg.RaftTLS.Clone()
		case n.cfg.TLS != nil:
			t.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: n.cfg.TLS.ClientCAs, Certificates: n.cfg.TLS.Certificates}
		}
		t.ResponseHeaderTimeout = 30 * time.Second
		n.peer = t
	})
	return n.peer
}

// askRaftStates fills each node's state, term and applied index as the
// node reports them, asking the others (with the caller's token) for at
// most a second.
func (n *Node) askRaftStates(r *http.Request, nodes []api.Node) {
	ctx, cancel := context.WithTimeout(r.Context(), time.Second)
	defer cancel()
	tok := uiToken(r)
	client := &http.Client{Transport: n.peerTransport()}
	var wg sync.WaitGroup
	for i := range nodes {
		nd := &nodes[i]
		if nd.ID == n.cfg.ID {
			nd.State, nd.Term, nd.AppliedIndex = n.raft.State().String(), n.raft.CurrentTerm(), n.raft.AppliedIndex()
			continue
		}
		if nd.HTTPAddr == "" {
			nd.Error = "its API address is not known yet"
			continue
		}
		wg.Go(func() {
			scheme := "http"
			if n.cfg.TLS != nil {
				scheme = "https"
			}
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+nd.HTTPAddr+"/v1/raft/state", nil)
			if tok != "" {
				req.Header.Set("Authorization", "Bearer "+tok)
			}
			resp, err := client.Do(req)
			if err != nil {
				nd.Error = err.Error()
				return
			}
			defer resp.Body.Close()
			var st api.RaftState
			if resp.StatusCode != http.StatusOK {
				nd.Error = fmt.Sprintf("GET /v1/raft/state: %s", resp.Status)
			} else if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
				nd.Error = "GET /v1/raft/state: " + err.Error()
			} else {
				nd.State, nd.Term, nd.AppliedIndex = st.State, st.Term, st.AppliedIndex
			}
		})
	}
	wg.Wait()
}

// natsView is this node's NATS connection.
func (n *Node) natsView() *api.NATSView {
	if n.nc == nil {
		return nil
	}
	v := &api.NATSView{Connected: n.nc.IsConnected(), Known: n.nc.Servers()}
	if v.Connected {
		v.URL, v.ServerName, v.Version, v.Cluster = n.nc.ConnectedUrlRedacted(), n.nc.ConnectedServerName(), n.nc.ConnectedServerVersion(), n.nc.ConnectedClusterName()
		v.JetStream, _ = n.nc.ConnectedServerJetStream()
	}
	if v.Known == nil {
		v.Known = []string{}
	}
	return v
}
