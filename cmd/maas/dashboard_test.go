package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/maas-ml/maas/deploy/serve"
	"github.com/maas-ml/maas/internal/api"
	"github.com/maas-ml/maas/internal/auth"
	"github.com/maas-ml/maas/internal/dataset"
)

// chromium finds a Chromium (or Chrome) binary: $MAAS_CHROMIUM, or one on
// the PATH.
func chromium() string {
	if p := os.Getenv("MAAS_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// TestDashboardBrowser drives the dashboard in headless Chromium against
// `maas local` (a real process, with API tokens) training a small CNN: a
// page without a token gets 401 and the login form; with the read token
// the jobs table shows the job, its loss curve gains points while it
// trains, the cluster page lists the workers, and "try it" on a digit drawn
// with the mouse shows the class and probabilities that the serving
// endpoint itself gives for the same pixels. The pages' screenshots go to
// bench/results/dashboard/.
func TestDashboardBrowser(t *testing.T) {
	if _, err := dataset.DefaultMNISTDir(); err != nil {
		t.Skip("real MNIST not in the module cache:", err)
	}
	browser := chromium()
	if browser == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("Chromium not found: CI must install it (.ci/run: apt-get install chromium)")
		}
		t.Skip("Chromium not found (apt-get install chromium, or set MAAS_CHROMIUM): the dashboard's browser test is skipped")
	}
	bin := buildMaas(t)
	dir := t.TempDir()
	shots := filepath.Join("..", "..", "bench", "results", "dashboard")
	if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}

	// The cluster's tokens: maas local calls with admin, the browser reads.
	tk := &auth.Tokens{}
	admin, read := mustToken(t), mustToken(t)
	tk.Add(admin, auth.Token{Name: "admin", Role: auth.RoleAdmin})
	tk.Add(read, auth.Token{Name: "dashboard", Role: auth.RoleRead})
	tj, err := json.Marshal(tk)
	if err != nil {
		t.Fatal(err)
	}
	tokens, adminFile := filepath.Join(dir, "tokens.json"), filepath.Join(dir, "admin.token")
	if err := os.WriteFile(tokens, tj, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(adminFile, []byte(admin+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Long enough to watch: 5 epochs of 300 steps, a metric point a step.
	spec := filepath.Join(dir, "tiny.yaml")
	text := strings.Replace(strings.Replace(e2eSpec, "batch_size: 600", "batch_size: 200", 1), "epochs: 1", "epochs: 5", 1)
	if err := os.WriteFile(spec, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	p := freePorts(t, 4)
	apiURL, serveURL := fmt.Sprintf("http://127.0.0.1:%d", p[1]), fmt.Sprintf("http://127.0.0.1:%d", p[3])
	cmd := exec.Command(bin, "local", "-f", spec, "-o", filepath.Join(dir, "model"), "--data-dir", filepath.Join(dir, "data"),
		"--workers", "2", "--tokens", tokens, "--token-file", adminFile, "--keep-serving",
		"--nats-port", fmt.Sprint(p[0]), "--api", apiURL[len("http://"):], "--raft", fmt.Sprintf("127.0.0.1:%d", p[2]),
		"--serve-addr", serveURL[len("http://"):])
	var logs bytes.Buffer
	cmd.Stderr = &logs
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	dashURL := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		re := regexp.MustCompile(`dashboard (http://\S+/ui/)`)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				dashURL <- m[1]
			}
		}
		exited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("maas local's log:\n%s", tail(logs.String(), 4000))
		}
	})
	var ui string
	select {
	case ui = <-dashURL:
	case err := <-exited:
		t.Fatalf("maas local exited before printing the dashboard's address: %v\n%s", err, logs.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("maas local printed no dashboard address in 60 s:\n%s", logs.String())
	}
	if ui != apiURL+"/ui/" {
		t.Fatalf("dashboard at %s, want %s", ui, apiURL+"/ui/")
	}

	// Without a token: 401, the API's and the dashboard's, from a plain
	// client; a read token in the cookie reads but cannot cancel.
	for _, path := range []string{"/ui/", "/ui/app.js", "/ui/config", "/v1/jobs", "/ui/?token=not-a-token"} {
		resp, err := http.Get(apiURL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("GET %s without a token: %s, want 401", path, resp.Status)
		}
	}

	ctx, cancel := browserContext(t, browser)
	defer cancel()
	resp, err := chromedp.Run(ctx, chromedp.NavigateResponse(ui))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != http.StatusUnauthorized {
		t.Fatalf("the dashboard without a token: %d, want 401", resp.Status)
	}
	if _, err := waitJS[bool](ctx, 10*time.Second, `!!document.querySelector("form[action='/ui/login'] input[name=token]")`); err != nil {
		t.Fatalf("no login form on the 401 page: %v", err)
	}
	shot(t, ctx, shots, "login.png")
	// Logging in through the form: the token is kept in the session.
	if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.CSS("#token"), read), chromedp.Submit(chromedp.CSS("#token"))); err != nil {
		t.Fatal(err)
	}

	// The jobs table shows the job.
	job, err := waitJS[string](ctx, 60*time.Second, `(() => { const r = document.querySelector("#jobs-table tr[data-job]"); return r && r.dataset.job })()`)
	if err != nil {
		t.Fatalf("the jobs table shows no job: %v", err)
	}
	t.Logf("job %s in the jobs table", job)
	if _, err := waitJS[bool](ctx, 60*time.Second, `document.querySelector("#jobs-table tr[data-job]").dataset.state === "running"`); err != nil {
		t.Fatalf("the job is not shown running: %v", err)
	}
	time.Sleep(2500 * time.Millisecond) // a refresh with progress in it
	shot(t, ctx, shots, "jobs.png")

	// Its curves gain points while it trains.
	if err := chromedp.Do(ctx, chromedp.Navigate(ui+"#/job/"+job)); err != nil {
		t.Fatal(err)
	}
	n1, err := waitJS[int](ctx, 60*time.Second, `Number(document.querySelector("#chart-loss").dataset.points || 0)`)
	if err != nil {
		t.Fatalf("the loss chart has no points: %v", err)
	}
	n2, err := waitJS[int](ctx, 60*time.Second, fmt.Sprintf(`(() => { const n = Number(document.querySelector("#chart-loss").dataset.points); return n > %d && n })()`, n1))
	if err != nil {
		t.Fatalf("the loss chart stayed at %d points: %v", n1, err)
	}
	running, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`!!document.querySelector("#job-head .state.running")`))
	if err != nil || !running {
		t.Fatalf("the loss chart grew from %d to %d points, but not while the job was running (%v)", n1, n2, err)
	}
	t.Logf("the loss chart grew from %d to %d points while the job ran", n1, n2)
	shot(t, ctx, shots, "job-training.png")

	// The cluster page lists both workers and the parameter server.
	if err := chromedp.Do(ctx, chromedp.Navigate(ui+"#/cluster")); err != nil {
		t.Fatal(err)
	}
	if _, err := waitJS[bool](ctx, 30*time.Second, `document.querySelectorAll("#members-table tr[data-kind=worker]").length === 2 &&
		!!document.querySelector("#members-table tr[data-member='local-ps-1']") && !!document.querySelector("#coordinators-table tr[data-node]")`); err != nil {
		t.Fatalf("the cluster page does not list the 2 workers, the parameter server and the coordinator: %v", err)
	}
	shot(t, ctx, shots, "cluster.png")

	// The job ends; its page shows the epochs' test evaluations.
	c, err := api.NewClient(apiURL, api.WithToken(read))
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * time.Minute)
	for {
		js, err := c.Job(t.Context(), job)
		if err == nil && api.Terminal(js.State) {
			if js.State != api.JobSucceeded {
				t.Fatalf("job %s %s: %s", job, js.State, js.Reason)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s did not finish in 3 minutes (%v)", job, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(ui+"#/job/"+job)); err != nil {
		t.Fatal(err)
	}
	if _, err := waitJS[bool](ctx, 30*time.Second, `!!document.querySelector("#job-head .state.succeeded") && Number(document.querySelector("#chart-loss").dataset.series) === 3 &&
		Number(document.querySelector("#job-events").dataset.count) > 2 && Number(document.querySelector("#memberships").dataset.count) >= 1`); err != nil {
		t.Fatalf("the finished job's page: %v", err)
	}
	shot(t, ctx, shots, "job.png")

	// Try it: draw a 1 on the models page's canvas.
	if err := chromedp.Do(ctx, chromedp.Navigate(ui+"#/models")); err != nil {
		t.Fatal(err)
	}
	if _, err := waitJS[bool](ctx, 60*time.Second, `!!document.querySelector("#models-table tr[data-served=yes]") && document.querySelector("#try-model").value !== ""`); err != nil {
		t.Fatalf("the models page shows no served model: %v", err)
	}
	box, err := chromedp.Run(ctx, chromedp.Evaluate[[]float64](`(() => { const r = document.querySelector("#try-canvas").getBoundingClientRect(); return [r.left, r.top, r.width, r.height] })()`))
	if err != nil {
		t.Fatal(err)
	}
	x, y0, hgt := box[0]+box[2]*0.5, box[1]+box[3]*0.15, box[3]*0.7
	draw := []chromedp.Action[chromedp.Void]{chromedp.MouseEvent(chromedp.MousePressed, x, y0, chromedp.ButtonLeft)}
	for i := 1; i <= 20; i++ {
		draw = append(draw, chromedp.MouseEvent(chromedp.MouseMoved, x, y0+hgt*float64(i)/20, chromedp.ButtonLeft))
	}
	draw = append(draw, chromedp.MouseEvent(chromedp.MouseReleased, x, y0+hgt, chromedp.ButtonLeft))
	if err := chromedp.Do(ctx, draw...); err != nil {
		t.Fatal(err)
	}
	cls, err := waitJS[string](ctx, 30*time.Second, `document.querySelector("#try-result").dataset.class`)
	if err != nil {
		t.Fatalf("try it shows no class: %v", err)
	}
	shot(t, ctx, shots, "models.png")
	var probs []float64
	if err := json.Unmarshal([]byte(mustEval[string](t, ctx, `document.querySelector("#try-result").dataset.probs`)), &probs); err != nil {
		t.Fatal(err)
	}
	sent := mustEval[struct {
		Model string    `json:"model"`
		Shape []int     `json:"shape"`
		Data  []float64 `json:"data"`
	}](t, ctx, `window.maasTry`)
	t.Logf("try it: a drawn 1 → class %s, probabilities %.3f", cls, probs)
	// The same pixels, asked of the serving endpoint directly.
	want := inferDirect(t, serveURL, read, sent.Model, sent.Shape, sent.Data)
	if fmt.Sprint(want.class) != cls || len(probs) != len(want.probs) {
		t.Fatalf("the page shows class %s of %d probabilities; the endpoint answers %d of %d", cls, len(probs), want.class, len(want.probs))
	}
	for k := range probs {
		if math.Abs(probs[k]-want.probs[k]) > 1e-6 {
			t.Fatalf("the page's probability of class %d is %g; the endpoint's %g", k, probs[k], want.probs[k])
		}
	}
	if sum := sumOf(probs); math.Abs(sum-1) > 1e-4 {
		t.Fatalf("the probabilities sum to %g", sum)
	}

	// The session cookie reads the API but a read token cannot cancel.
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar}
	if resp, err := hc.Get(apiURL + "/ui/?token=" + url.QueryEscape(read)); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("logging in with ?token=: %v %v", resp, err)
	}
	req, _ := http.NewRequest(http.MethodPost, apiURL+"/v1/jobs/"+job+"/cancel", nil)
	req.Header.Set("X-Maas-UI", "1")
	if resp, err := hc.Do(req); err != nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("cancel with the read session: %v %v, want 403", resp, err)
	}
	if resp, err := hc.Get(apiURL + "/v1/jobs/" + job); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET the job with the read session: %v %v", resp, err)
	}
}

func mustToken(t *testing.T) string {
	t.Helper()
	tok, err := auth.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// browserContext starts headless Chromium for the test.
func browserContext(t *testing.T, browser string) (context.Context, context.CancelFunc) {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(browser), chromedp.NoSandbox,
		chromedp.WindowSize(1400, 1000), chromedp.Flag("disable-gpu", true), chromedp.Flag("disable-dev-shm-usage", true))
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[chromedp.Void](`1`)); err != nil {
		cancel()
		acancel()
		t.Fatalf("starting %s: %v", browser, err)
	}
	return ctx, func() { cancel(); acancel() }
}

// waitJS evaluates expr in the page every 200 ms until it is truthy and
// returns its value, for at most d. Errors while a page loads (no
// document yet, a navigation under way) count as not yet.
func waitJS[T any](ctx context.Context, d time.Duration, expr string) (T, error) {
	var zero T
	deadline := time.Now().Add(d)
	last := fmt.Errorf("%s stayed false", expr)
	for time.Now().Before(deadline) {
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool]("!!("+expr+")"))
		if err == nil && ok {
			return chromedp.Run(ctx, chromedp.Evaluate[T](expr))
		}
		if err != nil {
			last = err
		}
		time.Sleep(200 * time.Millisecond)
	}
	return zero, fmt.Errorf("after %v: %w", d, last)
}

func mustEval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
	return v
}

// shot saves the viewport as dir/name (PNG).
func shot(t *testing.T, ctx context.Context, dir, name string) {
	t.Helper()
	b, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

type directAnswer struct {
	class int64
	probs []float64
}

// inferDirect asks the serving endpoint for the class and probabilities
// of one raw-pixel sample.
func inferDirect(t *testing.T, serveURL, token, model string, shape []int, data []float64) directAnswer {
	t.Helper()
	raw, _ := json.Marshal(data)
	body, _ := json.Marshal(serve.InferRequest{Inputs: []serve.InferInput{{Name: serve.InputName, Datatype: serve.DatatypeFP32,
		Shape: append([]int{1}, shape...), Parameters: map[string]any{serve.ParamRawPixels: true}, Data: raw}}})
	req, _ := http.NewRequest(http.MethodPost, serveURL+"/v2/models/"+model+"/infer", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("infer: %s: %s", resp.Status, b)
	}
	var out struct {
		Outputs []struct {
			Name string          `json:"name"`
			Data json.RawMessage `json:"data"`
		} `json:"outputs"`
	}
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	var a directAnswer
	for _, o := range out.Outputs {
		switch o.Name {
		case "probabilities":
			json.Unmarshal(o.Data, &a.probs)
		case "class":
			var cs []int64
			json.Unmarshal(o.Data, &cs)
			if len(cs) == 1 {
				a.class = cs[0]
			}
		}
	}
	if len(a.probs) == 0 {
		t.Fatalf("infer answered no probabilities: %s", b)
	}
	return a
}

func sumOf(xs []float64) float64 {
	s := 0.0
	for _, x := range xs {
		s += x
	}
	return s
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}
