#!/usr/bin/env bash
# The CUDA backend on a GPU machine, in one remote call. The GPU machine has
# no Go toolchain and no network, so the binaries are built here:
#
#   bench/gpu.sh build            # here: CGO_ENABLED=0 binaries into bin/gpu
#   bench/gpu.sh run              # there (repository root, bin/gpu carried):
#                                 # the CUDA tests, the kernel benchmarks, and
#                                 # training throughput of maas and PyTorch
#
# `run` takes about 3 minutes and prints a table of samples/s: maas on the
# GPU (fp32, and with --allow-tf32), maas on the CPU, PyTorch 2.x eager fp32
# on the GPU, for the seed CNN on 3x32x32 at batch 64 and 512 and the
# row-MNIST LSTM (128 units) at batch 64, all on synthetic data.
#
# Environment: OUT (default bin/gpu), STEPS (30), WARMUP (5), PYTHON
# (python3), CPU=0 to skip the CPU runs.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${OUT:-bin/gpu}
STEPS=${STEPS:-30}
WARMUP=${WARMUP:-5}
PYTHON=${PYTHON:-python3}
CPU=${CPU:-1}

build() {
	mkdir -p "$OUT"
	CGO_ENABLED=0 go test -c -ldflags='-s -w' -o "$OUT/cuda.test" ./tensor/cuda
	CGO_ENABLED=0 go test -c -ldflags='-s -w' -o "$OUT/gputrain.test" ./internal/train/gputrain
	CGO_ENABLED=0 go build -ldflags='-s -w' -o "$OUT/maas" ./cmd/maas
	ls -la "$OUT"
	echo "gpu.sh: built into $OUT; on the GPU machine run: bench/gpu.sh run (with $OUT carried)"
}

# bench_maas SPEC BATCH DEVICE [FLAGS...] prints maas's JSON line, or {}
# (and the error on stderr).
bench_maas() {
	local spec=$1 batch=$2 device=$3 out last
	shift 3
	out=$(timeout 120 "$OUT/maas" bench train -f "$spec" --batch "$batch" --device "$device" \
		--steps "$STEPS" --warmup "$WARMUP" "$@" 2>&1) || true
	last=${out##*$'\n'}
	if [[ $last == \{* ]]; then
		echo "$last"
	else
		echo "gpu.sh: maas bench train -f $spec --batch $batch --device $device $*: $last" >&2
		echo '{}'
	fi
}

run() {
	[[ -x "$OUT/maas" && -x "$OUT/cuda.test" && -x "$OUT/gputrain.test" ]] || { echo "gpu.sh: no binaries in $OUT: run bench/gpu.sh build first" >&2; exit 1; }
	command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true

	echo "== CUDA tests (tensortest suite, graph replay, the device-resident Trainer against nn on the GPU)"
	(cd tensor/cuda && timeout 150 "../../$OUT/cuda.test" -test.run 'TestGPU' -test.v -test.count=1 2>&1 |
		grep -E '^(=== RUN|--- |PASS|FAIL|ok|panic)|cuda_test.go|running on' | grep -v '=== RUN' | head -60) || echo "CUDA tests: FAILED"
	(timeout 150 "$OUT/gputrain.test" -test.run 'TestGPU' -test.v -test.count=1 2>&1 |
		grep -E '^(=== RUN|--- |PASS|FAIL|ok|panic)|trainer_test.go|running on' | grep -v '=== RUN' | head -60) || echo "Trainer tests: FAILED"

	echo "== kernel benchmarks (host slices in and out, so transfers included)"
	(cd tensor/cuda && timeout 90 "../../$OUT/cuda.test" -test.run '^$' -test.bench 'GPU' -test.benchtime 20x 2>&1 | grep -E 'Benchmark|ok|FAIL|skip') || echo "benchmarks: FAILED"

	echo "== training throughput"
	local results
	results=$(mktemp)
	local cnn=examples/cifar10-cnn.yaml lstm=bench/specs/mnist-lstm-plain.yaml
	for c in "$cnn 64" "$cnn 512" "$lstm 64"; do
		set -- $c
		echo "{\"col\": \"maas cuda\", \"spec\": \"$1\", \"batch\": $2, \"r\": $(bench_maas "$1" "$2" cuda)}" >>"$results"
		echo "{\"col\": \"maas cuda tf32\", \"spec\": \"$1\", \"batch\": $2, \"r\": $(bench_maas "$1" "$2" cuda --allow-tf32)}" >>"$results"
		if [[ $CPU == 1 ]]; then
			echo "{\"col\": \"maas cpu\", \"spec\": \"$1\", \"batch\": $2, \"r\": $(bench_maas "$1" "$2" cpu)}" >>"$results"
		fi
	done
	if "$PYTHON" -c 'import torch; assert torch.cuda.is_available()' 2>/dev/null; then
		timeout 120 "$PYTHON" bench/torch_gpu.py --steps "$STEPS" --warmup "$WARMUP" | while read -r line; do
			echo "{\"col\": \"pytorch cuda\", \"r\": $line}" >>"$results"
		done || echo "PyTorch reference failed" >&2
	else
		echo "gpu.sh: $PYTHON has no CUDA PyTorch: the PyTorch column stays empty" >&2
	fi
	table "$results"
	rm -f "$results"
}

# table FILE prints samples/s per case (rows) and implementation (columns).
table() {
	"$PYTHON" - "$1" <<'PY' || cat "$1"
import json, os, sys
rows, cols, cell = [], [], {}
for line in open(sys.argv[1]):
    try:
        d = json.loads(line)
    except ValueError:
        continue
    r = d["r"]
    spec = os.path.basename(d.get("spec", r.get("spec", "?"))).removesuffix(".yaml")
    case = (spec, d.get("batch", r.get("batch")))
    if case not in rows:
        rows.append(case)
    if d["col"] not in cols:
        cols.append(d["col"])
    v = r.get("samples_per_sec")
    # maas on a GPU runs the device-resident Trainer; a * marks a model
    # that trained through the backend's per-call copies instead.
    star = "cuda" in d["col"] and r.get("device_resident") is False
    cell[case, d["col"]] = "%.0f%s" % (v, "*" if star else "") if v else None
print("%-22s %6s" % ("samples/s", "batch") + "".join("%16s" % c for c in cols))
for case in rows:
    vals = ["%16s" % (cell.get((case, c)) or "-") for c in cols]
    print("%-22s %6s" % case + "".join(vals))
if any(str(v).endswith("*") for v in cell.values()):
    print("* per-call copies: the model has a layer the device-resident Trainer does not run")
PY
}

case ${1:-} in
build) build ;;
run) run ;;
*)
	echo "usage: bench/gpu.sh build | run" >&2
	exit 2
	;;
esac
