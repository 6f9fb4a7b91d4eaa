#!/usr/bin/env bash
# Side-by-side training throughput, maas vs PyTorch, on this machine in one
# run. For each spec and thread count the two implementations alternate
# (A B A B ...) so drift in machine load hits both alike; the table shows the
# median samples/s of each and the ratio of the medians.
#
#   bench/compare-train.sh                  # 3 rounds, 30 timed steps, 5 warm-up
#   ROUNDS=5 STEPS=50 bench/compare-train.sh
#   BASELINE=/tmp/maas-old bench/compare-train.sh   # also another maas build, in the same rounds
#
# Environment: MAAS (default ./bin/maas; built with `make build` when
# missing), PYTHON (default /usr/bin/python3, Debian's python3-torch),
# ROUNDS (3), STEPS (30), WARMUP (5), SPECS and THREADS (space-separated
# lists overriding the defaults below), BASELINE (a second maas binary run
# in each round after maas; the table then compares maas with it too).
set -euo pipefail

cd "$(dirname "$0")/.."

MAAS=${MAAS:-./bin/maas}
PYTHON=${PYTHON:-/usr/bin/python3}
ROUNDS=${ROUNDS:-3}
STEPS=${STEPS:-30}
WARMUP=${WARMUP:-5}
SPECS=${SPECS:-"examples/mnist-cnn.yaml examples/cifar10-cnn.yaml examples/mnist-lstm.yaml examples/mnist-gru.yaml"}
THREADS=${THREADS:-"1 2"}
BASELINE=${BASELINE:-}
if [[ -n "$BASELINE" && ! -x "$BASELINE" ]]; then
	echo "compare-train: BASELINE=$BASELINE is not an executable" >&2
	exit 1
fi

# OpenBLAS single-threaded: each implementation's own thread count is the
# one under test; a second BLAS thread pool would oversubscribe the cores.
export OPENBLAS_NUM_THREADS=1

if [[ ! -x "$MAAS" ]]; then
	if [[ "$MAAS" == ./bin/maas ]]; then
		echo "compare-train: $MAAS missing, running make build" >&2
		if [[ -f Makefile ]]; then make build >&2; else go build -o bin/maas ./cmd/maas >&2; fi
	fi
	[[ -x "$MAAS" ]] || { echo "compare-train: no maas binary at $MAAS" >&2; exit 1; }
fi
"$PYTHON" -c 'import torch, yaml, numpy' || {
	echo "compare-train: $PYTHON lacks torch/yaml/numpy (apt-get install python3-torch python3-yaml)" >&2
	exit 1
}

mkdir -p bench/results
OUTFILE=bench/results/train-$(date +%Y%m%d-%H%M%S).jsonl
TSV=$(mktemp)
trap 'rm -f "$TSV"' EXIT

# run LABEL SPEC THREADS CMD...: runs CMD, appends its JSON line to OUTFILE
# and "spec threads impl samples_per_sec" to TSV. A failing run is reported
# and skipped, not fatal.
run() {
	local impl=$1 spec=$2 threads=$3 out line sps
	shift 3
	if ! out=$("$@"); then
		echo "compare-train: FAILED: $*" >&2
		return 0
	fi
	line=$(printf '%s\n' "$out" | grep '^{' | tail -n 1 || true)
	if [[ -z "$line" ]]; then
		echo "compare-train: no JSON line from: $*" >&2
		return 0
	fi
	printf '%s\n' "$line" >>"$OUTFILE"
	sps=$(printf '%s' "$line" | "$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["samples_per_sec"])')
	printf '%s\t%s\t%s\t%s\n' "$spec" "$threads" "$impl" "$sps" >>"$TSV"
	printf '  %-8s %-28s threads=%s  %s samples/s\n' "$impl" "$spec" "$threads" "$sps" >&2
}

echo "compare-train: $(nproc) cpus, rounds=$ROUNDS steps=$STEPS warmup=$WARMUP -> $OUTFILE" >&2
for spec in $SPECS; do
	for t in $THREADS; do
		for ((r = 1; r <= ROUNDS; r++)); do
			run maas "$spec" "$t" "$MAAS" bench train -f "$spec" --threads "$t" --steps "$STEPS" --warmup "$WARMUP"
			if [[ -n "$BASELINE" ]]; then
				run baseline "$spec" "$t" "$BASELINE" bench train -f "$spec" --threads "$t" --steps "$STEPS" --warmup "$WARMUP"
			fi
			run pytorch "$spec" "$t" "$PYTHON" bench/torch_peer.py throughput -f "$spec" --threads "$t" --steps "$STEPS" --warmup "$WARMUP"
		done
	done
done

"$PYTHON" - "$TSV" "$SPECS" "$THREADS" "$BASELINE" <<'PY'
import statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
vals = {}
for spec, t, impl, sps in rows:
    vals.setdefault((spec, t, impl), []).append(float(sps))
def med(k):
    v = vals.get(k)
    return statistics.median(v) if v else None
base = bool(sys.argv[4])
fmt = "{:<28} {:>7} {:>14} {:>16} {:>13}" + (" {:>16} {:>14}" if base else "")
head = ["spec", "threads", "maas samp/s", "pytorch samp/s", "maas/pytorch"]
print(fmt.format(*head, *(["baseline samp/s", "maas/baseline"] if base else [])))
num = lambda v: "n/a" if v is None else f"{v:.1f}"
ratio = lambda a, b: f"{a / b:.3f}" if a is not None and b else "n/a"
for spec in sys.argv[2].split():
    for t in sys.argv[3].split():
        m, p, b = med((spec, t, "maas")), med((spec, t, "pytorch")), med((spec, t, "baseline"))
        cols = [spec, t, num(m), num(p), ratio(m, p)]
        if base:
            cols += [num(b), ratio(m, b)]
        print(fmt.format(*cols))
PY
echo "raw results: $OUTFILE" >&2
