#!/usr/bin/env bash
# SGEMM side by side: tensor's Go backend (BenchmarkGemm) against OpenBLAS
# 0.3.21 through numpy, at 1 and 2 threads, ROUNDS alternating rounds;
# prints the median GFLOP/s of each and the ratio.
#
#   bench/compare-gemm.sh          # ROUNDS=3
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-/usr/bin/python3}
ROUNDS=${ROUNDS:-3}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
go test -c -o "$out/tensor.test" ./tensor
for r in $(seq "$ROUNDS"); do
	(cd tensor && "$out/tensor.test" -test.run '^$' -test.bench 'Gemm' -test.benchtime 1s) | grep '^BenchmarkGemm' >>"$out/maas"
	for t in 1 2; do OPENBLAS_NUM_THREADS=$t "$PYTHON" bench/numpy_gemm.py >>"$out/numpy"; done
done
"$PYTHON" - "$out/maas" "$out/numpy" <<'PY'
import json, re, statistics, sys
maas = {}
for line in open(sys.argv[1]):
    m = re.match(r"BenchmarkGemm/(\w+)/threads=(\d)-\d+\s+\d+\s+[\d.]+ ns/op\s+([\d.]+) GFLOP/s", line)
    if m:
        maas.setdefault((m[1], int(m[2])), []).append(float(m[3]))
peer = {}
for line in open(sys.argv[2]):
    r = json.loads(line)
    peer.setdefault((r["shape"], r["threads"]), []).append(r["gflops"])
print("| shape | threads | maas GFLOP/s | OpenBLAS GFLOP/s | maas / OpenBLAS |")
print("|---|---|---|---|---|")
for key in sorted(maas, key=lambda k: (k[1], list(dict.fromkeys(x[0] for x in maas)).index(k[0]))):
    a, b = statistics.median(maas[key]), statistics.median(peer.get(key, [float("nan")]))
    print(f"| {key[0]} | {key[1]} | {a:.1f} | {b:.1f} | {a / b:.2f} |")
PY
