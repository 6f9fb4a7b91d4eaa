#!/usr/bin/env bash
# Side-by-side inference speed of the seed CNN (examples/mnist-cnn.yaml and
# its 3x32x32 twin), maas vs PyTorch 1.13 eager, in process, no HTTP:
# batch-1 latency and batch-64 throughput at 1 and 2 threads, alternating
# A B A B for ROUNDS rounds; prints the medians and their ratios.
#
#   bench/compare-infer.sh            # ROUNDS=3
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-/usr/bin/python3}
ROUNDS=${ROUNDS:-3}
export OPENBLAS_NUM_THREADS=1
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
go test -c -o "$out/nn.test" ./nn
for r in $(seq "$ROUNDS"); do
	(cd nn && "$out/nn.test" -test.run '^$' -test.bench 'Inference/1x28x28' -test.benchtime 2s) | grep '^Benchmark' >>"$out/maas"
	"$PYTHON" bench/torch_infer.py -f examples/mnist-cnn.yaml --threads 1 2 >>"$out/torch"
done
"$PYTHON" - "$out/maas" "$out/torch" <<'PY'
import json, re, statistics, sys
maas = {}
for line in open(sys.argv[1]):
    m = re.match(r"BenchmarkInference/1x28x28/threads=(\d)/batch=(\d+)-\d+\s+\d+\s+(\d+) ns/op\s+([\d.]+) samples/s", line)
    if m:
        th, b, ns, sps = int(m[1]), int(m[2]), int(m[3]), float(m[4])
        maas.setdefault((th, b), []).append(ns / 1e6 if b == 1 else sps)
torch = [json.loads(l) for l in open(sys.argv[2]) if l.startswith("{")]
print("| threads | maas batch-1 ms | PyTorch batch-1 p50 ms | PyTorch / maas | maas batch-64 samples/s | PyTorch batch-64 samples/s | maas / PyTorch |")
print("|---|---|---|---|---|---|---|")
for th in (1, 2):
    t1 = statistics.median(r["batch1_p50_ms"] for r in torch if r["threads"] == th)
    t64 = statistics.median(r["batch_samples_per_sec"] for r in torch if r["threads"] == th)
    m1, m64 = statistics.median(maas[(th, 1)]), statistics.median(maas[(th, 64)])
    print(f"| {th} | {m1:.3f} | {t1:.3f} | {t1 / m1:.2f} | {m64:,.0f} | {t64:,.0f} | {m64 / t64:.2f} |")
PY
