#!/usr/bin/env python3
"""PyTorch DistributedDataParallel throughput: the peer for maas's
distributed data plane.

Runs the model of a maas job spec with DDP over the gloo backend in
--procs processes of one thread each on this machine, on synthetic data:
each process trains on its 1/procs slice of every global batch (as maas
workers do), gradients are all-reduced, the spec's optimizer steps. Prints
one JSON line with the global samples/s.

    OPENBLAS_NUM_THREADS=1 python3 bench/torch_ddp.py -f examples/mnist-cnn.yaml --procs 2 --steps 100
"""
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import socket  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
import torch.multiprocessing as mp  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch.nn.parallel import DistributedDataParallel as DDP  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_peer import build_model, build_optimizer, load_spec  # noqa: E402


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def worker(rank, world, a, port, out):
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    spec = load_spec(a.file)
    torch.manual_seed(spec.get("seed", 0))
    model = DDP(build_model(spec)[0])
    opt = build_optimizer(spec, model.parameters())
    batch = a.batch or spec["batch_size"]
    lo, hi = batch * rank // world, batch * (rank + 1) // world
    shape = spec["model"]["input"]
    x = torch.randn(hi - lo, *shape)
    y = torch.randint(0, 10, (hi - lo,))

    def step():
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()

    for _ in range(a.warmup):
        step()
    dist.barrier()
    t0 = time.perf_counter()
    for _ in range(a.steps):
        step()
    dist.barrier()
    dt = time.perf_counter() - t0
    if rank == 0:
        out.put(a.steps * batch / dt)
    dist.destroy_process_group()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("-f", "--file", required=True)
    p.add_argument("--procs", type=int, default=2)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--batch", type=int, default=0)
    a = p.parse_args()
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    port = free_port()
    procs = [ctx.Process(target=worker, args=(r, a.procs, a, port, out)) for r in range(a.procs)]
    for pr in procs:
        pr.start()
    for pr in procs:
        pr.join()
    if any(pr.exitcode != 0 for pr in procs):
        sys.exit("torch_ddp: a process failed")
    spec = load_spec(a.file)
    print(json.dumps({"impl": "pytorch-ddp", "torch": torch.__version__, "procs": a.procs, "threads_per_proc": 1,
                      "batch": a.batch or spec["batch_size"], "steps": a.steps,
                      "samples_per_sec": round(out.get(), 2), "spec": spec["name"]}))


if __name__ == "__main__":
    main()
