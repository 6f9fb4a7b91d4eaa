// Package dashboard is the web dashboard every coordinator serves at /ui/:
// static pages (no build step) that read the coordinator's API and draw
// with the vendored uPlot (static/vendor, its version and licence in
// static/vendor/README.md). The files are embedded in the binary; nothing
// is fetched at run time.
//
// Pages (one document, routed by the address's fragment):
//
//	#/jobs            the jobs, filtered by state
//	#/job/ID[,ID…]    a job's curves (others overlaid), step time, memberships, spec and events
//	#/cluster         coordinators, NATS, parameter servers and workers
//	#/models          published models, their test metrics, the served version, "try it"
package dashboard

import (
	"embed"
	"io/fs"
)

//go:embed static
var static embed.FS

// FS is the dashboard's files, rooted where /ui/ serves them.
func FS() fs.FS {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded tree always has static/
	}
	return sub
}
