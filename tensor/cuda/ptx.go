package cuda

import "embed"

// The kernels are compiled from kernels/*.cu to ptx/*.ptx by clang-14 (see
// gen-ptx.sh); the PTX is committed, and `make ptx-check` fails when it
// differs from a fresh build. The driver compiles PTX for the GPU it
// runs on when a module is loaded.
//
//go:generate sh gen-ptx.sh ptx

//go:embed ptx/*.ptx
var ptxFiles embed.FS
