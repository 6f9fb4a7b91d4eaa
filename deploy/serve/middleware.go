package serve

import (
	"context"
	"net/http"
	"time"

	"go.uber.org/zap"
)

// requestInfo is what a handler tells the access log about its request.
type requestInfo struct {
	model   string
	version string
}

type infoKey struct{}

// infoOf returns the request's requestInfo for its handler to fill in.
func infoOf(r *http.Request) *requestInfo {
	if ri, ok := r.Context().Value(infoKey{}).(*requestInfo); ok {
		return ri
	}
	return &requestInfo{}
}

// statusWriter records the status code written.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// accessLog logs one line per request: method, path, status, duration,
// model and version.
func (s *Server) accessLog(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		ri := &requestInfo{}
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r.WithContext(context.WithValue(r.Context(), infoKey{}, ri)))
		if ce := s.log.Check(zap.InfoLevel, "request"); ce != nil {
			status := sw.status
			if status == 0 {
				status = 499 // the client went away before an answer
			}
			ce.Write(zap.String("method", r.Method), zap.String("path", r.URL.Path), zap.Int("status", status),
				zap.Duration("duration", time.Since(start)), zap.String("model", ri.model), zap.String("version", ri.version))
		}
	})
}
