package layering

import (
	"bufio"
	"bytes"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const mod = "github.com/maas-ml/maas/"

// graph is the repository's import graph, non-test files only: package
// (without the module prefix) → the packages of this module it imports.
func graph(t *testing.T) map[string][]string {
	t.Helper()
	cmd := exec.Command("go", "list", "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`, mod+"...")
	cmd.Dir = "../.."
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.Bytes())
	}
	g := map[string][]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || !strings.HasPrefix(f[0], mod) {
			continue
		}
		from := strings.TrimPrefix(f[0], mod)
		g[from] = nil
		for _, imp := range f[1:] {
			if p, ok := strings.CutPrefix(imp, mod); ok {
				g[from] = append(g[from], p)
			}
		}
	}
	return g
}

// path returns a chain of imports from `from` to a package that bad
// accepts, or nil.
func path(g map[string][]string, from string, bad func(string) bool) []string {
	seen := map[string]bool{from: true}
	prev := map[string]string{}
	queue := []string{from}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, q := range g[p] {
			if seen[q] {
				continue
			}
			seen[q], prev[q] = true, p
			if bad(q) {
				chain := []string{q}
				for c := p; c != from; c = prev[c] {
					chain = append(chain, c)
				}
				chain = append(chain, from)
				slices.Reverse(chain)
				return chain
			}
			queue = append(queue, q)
		}
	}
	return nil
}

func under(root string) func(string) bool {
	return func(p string) bool { return p == root || strings.HasPrefix(p, root+"/") }
}

// allowed lists the imports that break a rule, with why, so that the
// check fails on any new one. It is empty: every rule holds.
var allowed = map[[2]string]string{}

// violations checks the layering of docs/architecture.md over import
// graph g and returns each rule broken, with the chain of imports.
func violations(g map[string][]string) (errs, notes []string) {
	check := func(rule string, from string, bad func(string) bool) {
		if _, ok := g[from]; !ok {
			errs = append(errs, rule+": package "+from+" not found")
			return
		}
		// Direct imports first, so that an allowed one is skipped.
		for _, q := range g[from] {
			if bad(q) {
				if why, ok := allowed[[2]string{from, q}]; ok {
					notes = append(notes, "allowed for now: "+from+" imports "+q+" ("+why+")")
					continue
				}
				errs = append(errs, rule+": "+from+" imports "+q)
			}
		}
		sub := map[string][]string{}
		for p, imps := range g {
			sub[p] = imps
		}
		sub[from] = slices.DeleteFunc(slices.Clone(g[from]), bad)
		if chain := path(sub, from, bad); chain != nil {
			errs = append(errs, rule+": "+strings.Join(chain, " → "))
		}
	}
	for p := range g {
		switch {
		case p == "tensor/cuda":
			check("tensor/cuda imports nothing of ours but tensor", p, func(q string) bool { return !under("tensor")(q) })
		case under("tensor")(p):
			check("tensor imports nothing of ours", p, func(q string) bool { return !under("tensor")(q) })
		case under("nn")(p):
			check("nn imports only tensor", p, func(q string) bool { return !under("tensor")(q) && !under("nn")(q) })
		}
	}
	roles := []string{"coordinator", "paramserver", "worker"}
	for _, r := range roles {
		check("the roles talk over NATS and never import each other", r, func(q string) bool {
			return slices.ContainsFunc(roles, func(o string) bool { return o != r && under(o)(q) })
		})
	}
	for p := range g {
		switch {
		case under("cmd")(p):
		case under("internal/cli")(p):
			check("nothing imports cmd/", p, under("cmd"))
		case p == "deploy/cluster/clustertest" || under("deploy/cluster")(p):
			check("only cmd/maas imports internal/cli", p, under("internal/cli"))
			check("nothing imports cmd/", p, under("cmd"))
		default:
			check("only cmd/maas imports internal/cli", p, under("internal/cli"))
			check("only the CLI imports deploy/cluster", p, func(q string) bool { return q == "deploy/cluster" })
			check("nothing imports cmd/", p, under("cmd"))
		}
	}
	slices.Sort(errs)
	return errs, notes
}

// TestImportRules: the repository's non-test import graph keeps the rules.
func TestImportRules(t *testing.T) {
	g := graph(t)
	if len(g) < 20 {
		t.Fatalf("go list found %d packages of this module; want the whole repository", len(g))
	}
	errs, notes := violations(g)
	for _, n := range notes {
		t.Log(n)
	}
	for _, e := range errs {
		t.Error(e)
	}
}

// TestImportRulesCatch: each rule catches an import that breaks it, direct
// or through other packages, and names the chain.
func TestImportRulesCatch(t *testing.T) {
	base := func() map[string][]string {
		return map[string][]string{"tensor": nil, "tensor/cuda": {"tensor"}, "nn": {"tensor"}, "coordinator": {"internal/wire"},
			"paramserver": {"nn"}, "worker": {"nn"}, "internal/wire": nil, "internal/x": nil, "internal/train/gputrain": {"nn", "tensor", "tensor/cuda"},
			"internal/cli": {"deploy/cluster", "coordinator", "internal/train/gputrain"}, "deploy/cluster": nil, "cmd/maas": {"internal/cli"}}
	}
	if errs, _ := violations(base()); len(errs) != 0 {
		t.Fatalf("a clean graph breaks rules: %v", errs)
	}
	for _, c := range []struct {
		name string
		edit func(g map[string][]string)
		want string
	}{
		{"kernels import the model", func(g map[string][]string) { g["tensor"] = []string{"nn"} }, "tensor imports nothing of ours: tensor imports nn"},
		{"the CUDA backend imports the model", func(g map[string][]string) { g["tensor/cuda"] = []string{"tensor", "nn"} },
			"tensor/cuda imports nothing of ours but tensor: tensor/cuda imports nn"},
		{"model imports a role", func(g map[string][]string) {
			g["nn"] = []string{"tensor", "internal/x"}
			g["internal/x"] = []string{"worker"}
		}, "nn imports internal/x"},
		{"a role reaches another", func(g map[string][]string) {
			g["internal/wire"] = []string{"internal/x"}
			g["internal/x"] = []string{"worker"}
		}, "coordinator → internal/wire → internal/x → worker"},
		{"a library imports the launcher", func(g map[string][]string) { g["internal/x"] = []string{"deploy/cluster"} }, "only the CLI imports deploy/cluster: internal/x imports deploy/cluster"},
		{"a library imports the CLI", func(g map[string][]string) { g["worker"] = []string{"internal/cli"} }, "only cmd/maas imports internal/cli: worker imports internal/cli"},
		{"a role imports cmd", func(g map[string][]string) { g["paramserver"] = []string{"cmd/maas"} }, "nothing imports cmd/: paramserver imports cmd/maas"},
	} {
		g := base()
		c.edit(g)
		errs, _ := violations(g)
		if !slices.ContainsFunc(errs, func(e string) bool { return strings.Contains(e, c.want) }) {
			t.Errorf("%s: violations %q, want one containing %q", c.name, errs, c.want)
		}
	}
}
