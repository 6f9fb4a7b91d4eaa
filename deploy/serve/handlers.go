package serve

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// routes builds the handler of every endpoint. Each pattern takes every
// method and checks it itself, so that a wrong method answers 405 in JSON.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	get := []string{http.MethodGet, http.MethodHead}
	post := []string{http.MethodPost}
	handle := func(pattern string, methods []string, h http.HandlerFunc) {
		mux.Handle(pattern, allow(methods, h))
	}
	handle("/v2/health/live", get, s.live)
	handle("/v2/health/ready", get, s.ready)
	handle("/v2", get, s.serverMetadata)
	handle("/v2/{$}", get, s.serverMetadata)
	handle("/v2/models/{model}", get, s.modelMetadata)
	handle("/v2/models/{model}/versions/{version}", get, s.modelMetadata)
	handle("/v2/models/{model}/ready", get, s.modelReady)
	handle("/v2/models/{model}/versions/{version}/ready", get, s.modelReady)
	handle("/v2/models/{model}/infer", post, s.onVersion(infer))
	handle("/v2/models/{model}/versions/{version}/infer", post, s.onVersion(infer))
	handle("/v2/models/{model}/explain", post, s.onVersion(explain))
	handle("/v2/models/{model}/versions/{version}/explain", post, s.onVersion(explain))
	mux.Handle("/metrics", allow(get, promhttp.HandlerFor(s.gatherer, promhttp.HandlerOpts{}).ServeHTTP))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, ErrorResponse{Error: fmt.Sprintf("serve: no endpoint %s; see /v2 and /v2/models/{name}", r.URL.Path)})
	})
	return s.accessLog(s.authenticate(mux))
}

// allow answers 405 to a method not in methods.
func allow(methods []string, h http.HandlerFunc) http.Handler {
	allowed := ""
	for i, m := range methods {
		if i > 0 {
			allowed += ", "
		}
		allowed += m
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, m := range methods {
			if r.Method == m {
				h(w, r)
				return
			}
		}
		w.Header().Set("Allow", allowed)
		writeJSON(w, http.StatusMethodNotAllowed, ErrorResponse{Error: fmt.Sprintf("serve: %s %s: method not allowed; use %s", r.Method, r.URL.Path, allowed)})
	})
}

func (s *Server) live(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]bool{"live": true})
}

// ready is 200 once a model is served, 503 before and after Shutdown.
func (s *Server) ready(w http.ResponseWriter, r *http.Request) {
	ok := !s.closing.Load() && len(s.table.Load().models) > 0
	code := http.StatusOK
	if !ok {
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, code, map[string]bool{"ready": ok})
}

func (s *Server) serverMetadata(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, ServerMetadata{Name: "maas", Version: s.cfg.Version, Extensions: []string{BinaryExtension, ExplainExtension}})
}

func (s *Server) modelMetadata(w http.ResponseWriter, r *http.Request) {
	v, err := s.resolve(r)
	if err != nil {
		writeError(w, err)
		return
	}
	defer v.release()
	t := s.table.Load()
	var versions []string
	for _, o := range t.models[v.name] {
		versions = append(versions, o.label)
	}
	if len(versions) == 0 { // unloaded meanwhile
		versions = []string{v.label}
	}
	writeJSON(w, http.StatusOK, v.metadata(versions))
}

func (s *Server) modelReady(w http.ResponseWriter, r *http.Request) {
	v, err := s.resolve(r)
	if err != nil {
		writeError(w, err)
		return
	}
	defer v.release()
	writeJSON(w, http.StatusOK, ModelReady{Name: v.name, Ready: true})
}

// resolve acquires the version a request's path names; the caller
// releases it.
func (s *Server) resolve(r *http.Request) (*version, error) {
	name := r.PathValue("model")
	num := 0
	if vs := r.PathValue("version"); vs != "" {
		n, err := strconv.Atoi(vs)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%w: version %q of %s: versions are whole numbers from 1", ErrVersionNotFound, vs, name)
		}
		num = n
	}
	v, err := s.acquire(name, num)
	if err != nil {
		return nil, err
	}
	ri := infoOf(r)
	ri.model, ri.version = v.name, v.label
	return v, nil
}
