#!/usr/bin/env bash
# Serving benchmark: maas serve (through HTTP on loopback, load generator in
# the same process) against PyTorch 1.13 eager in process (no HTTP), in
# alternating rounds on the same machine. Prints every run as a JSON line
# and the medians.
#
#   bench/serve.sh [MODEL_DIR] [ROUNDS]      (default out/mnist-cnn, 3)
#
# MODEL_DIR comes from `maas train -f examples/mnist-cnn.yaml -o out/mnist-cnn`.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-out/mnist-cnn}
rounds=${2:-3}
py=${PYTHON:-/usr/bin/python3}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
go build -o "$out/loadgen" ./bench/serve
for r in $(seq "$rounds"); do
	"$out/loadgen" -start "$dir" -c 1 -n 3000 -threads 1 -instances 1 -json 2>/dev/null | sed 's/^{/{"case":"c1",/' | tee -a "$out/runs"
	"$out/loadgen" -start "$dir" -c 16 -n 8000 -threads 1 -instances 2 -json 2>/dev/null | sed 's/^{/{"case":"c16-batching",/' | tee -a "$out/runs"
	"$out/loadgen" -start "$dir" -c 16 -n 8000 -threads 1 -instances 2 -batching=false -json 2>/dev/null | sed 's/^{/{"case":"c16-no-batching",/' | tee -a "$out/runs"
	"$out/loadgen" -start "$dir" -c 16 -n 8000 -threads 2 -instances 1 -json 2>/dev/null | sed 's/^{/{"case":"c16-1instance-2threads",/' | tee -a "$out/runs"
	"$py" bench/torch_infer.py -f "$dir/model.yaml" --threads 1 2 | sed 's/^{/{"case":"torch",/' | tee -a "$out/runs"
done
"$py" - "$out/runs" <<'PY'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
def med(case, key, **match):
    v = [r[key] for r in runs if r["case"] == case and all(r.get(k) == x for k, x in match.items())]
    return statistics.median(v) if v else float("nan")
print("\nmedians over %d rounds" % (len([r for r in runs if r["case"] == "c1"])))
print("maas c=1 (1 thread): p50 %.3f ms  p99 %.3f ms" % (med("c1", "p50_ms"), med("c1", "p99_ms")))
for c in ("c16-batching", "c16-no-batching", "c16-1instance-2threads"):
    print("maas %s: %.0f samples/s (mean batch %.1f, p99 %.2f ms)" % (c, med(c, "samples_per_sec"), med(c, "mean_batch"), med(c, "p99_ms")))
for th in (1, 2):
    print("torch %d thread(s): batch-1 p50 %.3f ms p99 %.3f ms; batch 64 %.0f samples/s" % (
        th, med("torch", "batch1_p50_ms", threads=th), med("torch", "batch1_p99_ms", threads=th), med("torch", "batch_samples_per_sec", threads=th)))
PY
