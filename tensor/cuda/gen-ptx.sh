#!/bin/sh
# gen-ptx.sh OUTDIR compiles each kernels/*.cu to OUTDIR/<name>.ptx with
# clang-14 for the GPU (no CUDA toolkit needed). The output depends only on
# the sources and the compiler's version, so `make ptx-check` can compare
# a fresh build with the committed files. CLANG overrides the compiler.
set -eu
cd "$(dirname "$0")"
out=${1:-ptx}
clang=${CLANG:-clang-14}
command -v "$clang" >/dev/null 2>&1 || {
	echo "gen-ptx: $clang not found: install it (apt-get install clang-14) or set CLANG" >&2
	exit 1
}
mkdir -p "$out"
for src in kernels/*.cu; do
	name=$(basename "$src" .cu)
	"$clang" -x cuda --cuda-device-only -nocudainc -nocudalib --cuda-gpu-arch=sm_75 \
		-O3 -ffp-contract=off -S "$src" -o "$out/$name.ptx"
done
