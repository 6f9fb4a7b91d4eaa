#!/usr/bin/env python3
"""PyTorch reference for bench/gpu.sh: training throughput on the GPU.

fp32 eager (TF32 off), Adam 1e-3, synthetic data of the real shapes: the
seed CNN on 3x32x32 (conv32-pool-conv64-pool-conv128-pool-dense128-dense10)
at batch 64 and 512, and an LSTM of 128 units on row-MNIST (28 steps of 28)
at batch 64. Prints one JSON line per case, as `maas bench train` does.

  python3 bench/torch_gpu.py [--steps 50] [--warmup 10] [--device cuda]
"""
import argparse
import json
import time

import torch
from torch import nn


def cnn():
    return nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(64, 128, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(128 * 4 * 4, 128), nn.ReLU(), nn.Linear(128, 10))


class RowLSTM(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(28, 128, batch_first=True)
        self.out = nn.Linear(128, 10)

    def forward(self, x):
        h, _ = self.lstm(x)
        return self.out(h[:, -1])


def throughput(name, model, shape, batch, steps, warmup, device):
    torch.manual_seed(1)
    model = model.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    x = torch.randn(batch, *shape, device=device)
    y = torch.randint(0, 10, (batch,), device=device)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()

    for _ in range(warmup):
        step()
    torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    torch.cuda.synchronize(device)
    secs = time.perf_counter() - start
    print(json.dumps({"impl": "pytorch", "device": device, "spec": name, "batch": batch,
                      "steps": steps, "samples_per_sec": steps * batch / secs}), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--device", default="cuda")
    a = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    for batch in (64, 512):
        throughput("cifar10-cnn", cnn(), (3, 32, 32), batch, a.steps, a.warmup, a.device)
    throughput("mnist-lstm-plain", RowLSTM(), (28, 28), 64, a.steps, a.warmup, a.device)


if __name__ == "__main__":
    main()
