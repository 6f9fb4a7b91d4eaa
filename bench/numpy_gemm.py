#!/usr/bin/python3
"""OpenBLAS SGEMM through numpy: the peer of tensor's BenchmarkGemm.

    OPENBLAS_NUM_THREADS=2 /usr/bin/python3 bench/numpy_gemm.py

Prints one JSON line per shape (the shapes of BenchmarkGemm, transposes as
views, so OpenBLAS gets them as transpose flags) with the median GFLOP/s of
several timed runs. Set OPENBLAS_NUM_THREADS before starting: OpenBLAS
reads it once.
"""

import json
import os
import time

import numpy as np

SHAPES = [
    ("sq256", False, False, 256, 256, 256),
    ("sq512", False, False, 512, 512, 512),
    ("sq1024", False, False, 1024, 1024, 1024),
    ("sq2048", False, False, 2048, 2048, 2048),
    ("conv2fwd", False, False, 64, 12544, 288),
    ("conv2dW", False, True, 64, 288, 12544),
    ("conv2dX", True, False, 288, 12544, 64),
    ("conv3fwd", False, False, 128, 3136, 576),
    ("fc1fwd", False, True, 64, 128, 1152),
]


def main():
    rng = np.random.default_rng(1)
    for name, ta, tb, m, n, k in SHAPES:
        a = rng.standard_normal((k, m) if ta else (m, k), dtype=np.float32)
        b = rng.standard_normal((n, k) if tb else (k, n), dtype=np.float32)
        opa, opb = (a.T if ta else a), (b.T if tb else b)
        c = np.empty((m, n), dtype=np.float32)
        flops = 2.0 * m * n * k
        np.matmul(opa, opb, out=c)
        reps = max(3, int(2e9 / flops))
        rates = []
        for _ in range(5):
            t0 = time.perf_counter()
            for _ in range(reps):
                np.matmul(opa, opb, out=c)
            rates.append(flops * reps / (time.perf_counter() - t0) / 1e9)
        rates.sort()
        print(json.dumps({"shape": name, "threads": int(os.environ.get("OPENBLAS_NUM_THREADS", "0")),
                          "gflops": round(rates[len(rates) // 2], 2)}), flush=True)


if __name__ == "__main__":
    main()
