#!/usr/bin/python3
"""PyTorch peer for the serving benchmark: in-process eager inference.

For the model a maas job spec describes (built by torch_peer.build_model,
PyTorch's default initialisation) it measures, at each thread count, under
torch.no_grad() on random inputs:

  - batch-1 latency: p50 and p99 of single-sample forward passes plus the
    softmax (no HTTP, no serialisation: a floor for a server's latency);
  - batch-64 throughput: samples/s of forward passes of 64 samples.

    /usr/bin/python3 bench/torch_infer.py -f examples/mnist-cnn.yaml --threads 1 2

Prints one JSON line per thread count. OPENBLAS_NUM_THREADS=1 is set before
torch loads, as in torch_peer.py, so torch.set_num_threads is the only
parallelism.
"""

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402

from torch_peer import build_model, load_spec  # noqa: E402


def percentile(sorted_values, p):
    return sorted_values[int(p * (len(sorted_values) - 1))]


def measure(spec, threads, n_latency, batch, n_batches, warmup):
    # set_num_interop_threads may be called once per process (main does).
    torch.set_num_threads(threads)
    torch.manual_seed(1)
    model, in_shape, _ = build_model(spec)
    model.eval()
    lat = []
    with torch.no_grad():
        x1 = torch.randn(1, *in_shape)
        for _ in range(warmup):
            torch.softmax(model(x1), dim=1)
        for _ in range(n_latency):
            t0 = time.perf_counter()
            torch.softmax(model(x1), dim=1)
            lat.append(time.perf_counter() - t0)
        xb = torch.randn(batch, *in_shape)
        for _ in range(max(1, warmup // 10)):
            torch.softmax(model(xb), dim=1)
        t0 = time.perf_counter()
        for _ in range(n_batches):
            torch.softmax(model(xb), dim=1)
        dt = time.perf_counter() - t0
    lat.sort()
    return {
        "impl": "pytorch-eager",
        "torch": torch.__version__,
        "spec": spec["name"],
        "threads": threads,
        "batch1_p50_ms": round(percentile(lat, 0.50) * 1e3, 4),
        "batch1_p99_ms": round(percentile(lat, 0.99) * 1e3, 4),
        "batch": batch,
        "batch_samples_per_sec": round(n_batches * batch / dt, 1),
    }


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-f", "--file", required=True, help="job spec (YAML)")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--latency-runs", type=int, default=2000, help="timed batch-1 forward passes")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--batches", type=int, default=50, help="timed batched forward passes")
    p.add_argument("--warmup", type=int, default=100)
    a = p.parse_args()
    spec = load_spec(a.file)
    torch.set_num_interop_threads(1)
    for t in a.threads:
        if t < 1:
            p.error("--threads must be >= 1")
        print(json.dumps(measure(spec, t, a.latency_runs, a.batch, a.batches, a.warmup)), flush=True)


if __name__ == "__main__":
    main()
