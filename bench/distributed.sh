#!/usr/bin/env bash
# The distributed data plane against single-process training, and against
# PyTorch DDP, on the same machine in one run:
#   - maas train, one process with 2 threads, one epoch of real MNIST;
#   - maas local, the embedded cluster (NATS, Raft coordinator, 1 parameter
#     server) with 2 workers × 1 thread, the same epoch: samples/s, the mean
#     step split (compute / push / wait for θ) and bytes on the wire per step
#     against the ideal 2 × 4 bytes × parameters × workers;
#   - PyTorch: one process with 2 threads, and DDP (gloo) with 2 processes ×
#     1 thread, on synthetic data of the same shape.
#
#   bench/distributed.sh [SPEC]     (default examples/mnist-cnn.yaml; EPOCHS=1, STEPS=200 for PyTorch)
set -euo pipefail
cd "$(dirname "$0")/.."
SPEC=${1:-examples/mnist-cnn.yaml}
EPOCHS=${EPOCHS:-1}
STEPS=${STEPS:-200}
MAAS=${MAAS:-./bin/maas}
PYTHON=${PYTHON:-/usr/bin/python3}
export OPENBLAS_NUM_THREADS=1
[[ -x "$MAAS" ]] || make build >&2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "== maas train --threads 2 ($EPOCHS epoch)" >&2
"$MAAS" train -f "$SPEC" -o "$tmp/single" --epochs "$EPOCHS" --threads 2 2>"$tmp/single.log" >/dev/null
single=$(grep 'epoch done' "$tmp/single.log" | tail -1 | sed 's/.*samples_per_sec": \([0-9.]*\).*/\1/')

echo "== maas local --workers 2 --threads 1 ($EPOCHS epoch)" >&2
"$MAAS" local -f "$SPEC" --epochs "$EPOCHS" --workers 2 --threads 1 --stats --data-dir "$tmp/local" -o "$tmp/model" \
	--nats-port "${NATS_PORT:-14222}" --api "127.0.0.1:${API_PORT:-17070}" --raft "127.0.0.1:${RAFT_PORT:-17000}" --serve-addr "" \
	2>"$tmp/local.log" >"$tmp/local.out"
stats=$(sed -n '/^{/,/^}/p' "$tmp/local.out")

echo "== PyTorch, 1 process × 2 threads and DDP 2 processes × 1 thread ($STEPS steps)" >&2
torch1=$("$PYTHON" bench/torch_peer.py throughput -f "$SPEC" --threads 2 --steps "$STEPS" --warmup 5)
ddp=$("$PYTHON" bench/torch_ddp.py -f "$SPEC" --procs 2 --steps "$STEPS" --warmup 5)

"$PYTHON" - "$single" "$stats" "$torch1" "$ddp" <<'PY'
import json, sys
single = float(sys.argv[1]); s = json.loads(sys.argv[2])
t1 = json.loads(sys.argv[3])["samples_per_sec"]; ddp = json.loads(sys.argv[4])["samples_per_sec"]
local = s["samples_per_sec"]
print(f"{'run':44s} {'samples/s':>10s}")
print(f"{'maas train, 1 process x 2 threads':44s} {single:10.1f}")
print(f"{'maas local, 2 workers x 1 thread':44s} {local:10.1f}   ratio to maas train: {local/single:.3f}")
print(f"{'PyTorch, 1 process x 2 threads':44s} {t1:10.1f}")
print(f"{'PyTorch DDP gloo, 2 processes x 1 thread':44s} {ddp:10.1f}   ratio to PyTorch 1 process: {ddp/t1:.3f}")
print(f"maas local step split (ms, mean over workers): compute {s['compute_ms']:.2f}, push {s['push_ms']:.2f}, wait for theta {s['wait_ms']:.2f}")
print(f"bytes on the wire per step: {s['wire_bytes_per_step']:.0f} vs ideal {s['ideal_bytes_per_step']:.0f} (2 x 4 B x {s['params']} params x {s['workers']} workers): {s['wire_over_ideal']:.4f}x")
PY
