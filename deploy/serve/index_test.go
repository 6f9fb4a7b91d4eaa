package serve

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/maas-ml/maas/internal/api"
)

// fakeIndex is an in-memory stand-in for the coordinator's model API:
// GET /v1/models and the files of each version.
func fakeIndex(t *testing.T, versions []api.ModelVersion, files map[string][]byte) *api.Client {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/models", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, versions)
	})
	mux.HandleFunc("GET /v1/models/{name}/versions/{v}/files/{file}", func(w http.ResponseWriter, r *http.Request) {
		b, ok := files[r.PathValue("name")+":"+r.PathValue("v")+"/"+r.PathValue("file")]
		if !ok {
			writeJSON(w, http.StatusNotFound, api.Error{Error: "no such file"})
			return
		}
		w.Write(b)
	})
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close)
	c, err := api.NewClient(hs.URL)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestLoadIndex loads the newest version of each model in the index; one
// that fails is reported and the others load.
func TestLoadIndex(t *testing.T) {
	ts := newTestServer(t, nil, nil)
	v1, v2 := newArtifact(t, ts.be, 1, nil), newArtifact(t, ts.be, 2, nil)
	c := fakeIndex(t,
		[]api.ModelVersion{{Name: "tiny", Version: 1}, {Name: "tiny", Version: 2}, {Name: "broken", Version: 4}},
		map[string][]byte{
			"tiny:1/model.yaml": v1.specYAML, "tiny:1/model.safetensors": v1.weights,
			"tiny:2/model.yaml": v2.specYAML, "tiny:2/model.safetensors": v2.weights,
			"broken:4/model.yaml": v1.specYAML,
		})
	err := ts.LoadIndex(context.Background(), c)
	if !errors.Is(err, ErrLoad) || !strings.Contains(err.Error(), "broken version 4") {
		t.Errorf("LoadIndex = %v, want ErrLoad naming broken version 4", err)
	}
	if got := ts.Models(); !reflect.DeepEqual(got, []ModelInfo{{Name: "tiny", Versions: []int{2}, Ready: true}}) {
		t.Errorf("Models() = %+v", got)
	}
	// Again: nothing new, nothing loaded twice.
	if err := ts.LoadIndex(context.Background(), c); err == nil || strings.Contains(err.Error(), "tiny") {
		t.Errorf("second LoadIndex = %v", err)
	}
}
