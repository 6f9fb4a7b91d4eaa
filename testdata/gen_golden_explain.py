#!/usr/bin/env python3
"""Generate testdata/golden/explain.safetensors: explanations computed in
PyTorch, which package nn's Explainer is checked against.

Models and inputs come from the other golden files, so the weights are
committed already:

  cnn   the seed CNN with the initial parameters and input batch of
        golden/seed_cnn_28.safetensors (param.<p>, input (4, 1, 28, 28))
  lstm  the 2-layer LSTM -> Linear of golden/rnn.safetensors (lstm.param.<p>,
        lstm.input (3, 4, 5)): attributions per time step and feature

Every computation is in float64 (model.double()); results are stored as F32.
For each case and sample s the file holds

  <case>.s<s>.ig.attr       integrated gradients of the predicted class's
                            logit, 50 points, zero baseline, trapezoid rule
                            (alphas k/49, k = 0..49, end points weighing half),
                            shaped like the input sample
  <case>.s<s>.ig.class      [1] I64: the predicted class
  <case>.s<s>.ig.f          [2]: the class logit at the sample and at the baseline
  <case>.s<s>.sal.attr      saliency: d logit / d x * x, predicted class
cnn only:
  cnn.s0.igb.attr           integrated gradients of class 3, 20 points, from
                            the baseline -0.4242 everywhere (a black MNIST
                            pixel, normalised)
  cnn.s<s>.cam.conv3        Grad-CAM of the predicted class on conv3's output
                            (before its ReLU): ReLU(sum_c mean_hw(dy/dA_c) A_c),
                            (7, 7)
  cnn.s<s>.cam.conv2        the same on conv2's output, (14, 14)

for s in 0, 1. Rerun from the repository root with

    OPENBLAS_NUM_THREADS=1 python3 testdata/gen_golden_explain.py

The output is deterministic for a given PyTorch version.
"""

import json
import os
import struct
import sys

import numpy as np
import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from gen_golden import SeedCNN, write_safetensors  # noqa: E402

GOLDEN = os.path.join(HERE, "golden")
GENERATOR = "testdata/gen_golden_explain.py"


def read_safetensors(path):
    """Read a safetensors file's F32 and I64 tensors into numpy arrays."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, h in header.items():
        if name == "__metadata__":
            continue
        lo, hi = h["data_offsets"]
        dt = {"F32": "<f4", "I64": "<i8", "I16": "<i2", "U8": "u1"}[h["dtype"]]
        out[name] = np.frombuffer(data[lo:hi], dtype=dt).reshape(h["shape"])
    return out


def integrated_gradients(model, x, baseline, steps, cls=None):
    alphas = torch.arange(steps, dtype=torch.float64) / (steps - 1)
    shape = (steps,) + tuple(x.shape)
    a = alphas.view((steps,) + (1,) * x.dim())
    path = (baseline + a * (x - baseline)).detach().requires_grad_(True)
    out = model(path.reshape(shape))
    if cls is None:
        cls = int(out[-1].argmax())
    out[:, cls].sum().backward()
    w = torch.ones(steps, dtype=torch.float64)
    w[0] = w[-1] = 0.5
    g = (path.grad * w.view((steps,) + (1,) * x.dim())).sum(0) / (steps - 1)
    return (x - baseline) * g, cls, float(out[-1, cls]), float(out[0, cls])


def saliency(model, x):
    xx = x.detach().clone().unsqueeze(0).requires_grad_(True)
    out = model(xx)
    cls = int(out[0].argmax())
    out[0, cls].backward()
    return xx.grad[0] * x


def grad_cam(model, layer, x):
    acts = {}

    def hook(_, __, y):
        y.retain_grad()
        acts["a"] = y

    h = layer.register_forward_hook(hook)
    out = model(x.unsqueeze(0))
    h.remove()
    cls = int(out[0].argmax())
    out[0, cls].backward()
    a, g = acts["a"][0], acts["a"].grad[0]
    weights = g.mean(dim=(1, 2))
    return torch.relu((weights.view(-1, 1, 1) * a).sum(0))


class LSTMHead(nn.Module):
    def __init__(self, feat, hidden, layers, classes):
        super().__init__()
        self.rnn = nn.LSTM(feat, hidden, num_layers=layers, batch_first=True)
        self.fc = nn.Linear(hidden, classes)

    def forward(self, x):
        y, _ = self.rnn(x)
        return self.fc(y[:, -1])


def main():
    torch.set_num_threads(1)
    out = {}
    cnn_file = read_safetensors(os.path.join(GOLDEN, "seed_cnn_28.safetensors"))
    cnn = SeedCNN(1, 28).double()
    with torch.no_grad():
        for name, p in cnn.named_parameters():
            p.copy_(torch.from_numpy(cnn_file["param." + name].astype(np.float64)))
    xs = torch.from_numpy(cnn_file["input"].astype(np.float64))
    for s in range(2):
        x = xs[s]
        attr, cls, fx, fb = integrated_gradients(cnn, x, torch.zeros_like(x), 50)
        out[f"cnn.s{s}.ig.attr"] = attr
        out[f"cnn.s{s}.ig.class"] = np.array([cls], dtype=np.int64)
        out[f"cnn.s{s}.ig.f"] = np.array([fx, fb])
        out[f"cnn.s{s}.sal.attr"] = saliency(cnn, x)
        out[f"cnn.s{s}.cam.conv3"] = grad_cam(cnn, cnn.conv3, x)
        out[f"cnn.s{s}.cam.conv2"] = grad_cam(cnn, cnn.conv2, x)
    attr, _, _, _ = integrated_gradients(cnn, xs[0], torch.full_like(xs[0], -0.4242), 20, cls=3)
    out["cnn.s0.igb.attr"] = attr

    rnn_file = read_safetensors(os.path.join(GOLDEN, "rnn.safetensors"))
    lstm = LSTMHead(5, 7, 2, int(rnn_file["lstm.logits"].shape[1])).double()
    rename = {"rnn.": "lstm1.", "fc.": "fc1."}
    with torch.no_grad():
        for name, p in lstm.named_parameters():
            key = name
            for a, b in rename.items():
                key = key.replace(a, b, 1) if key.startswith(a) else key
            p.copy_(torch.from_numpy(rnn_file["lstm.param." + key].astype(np.float64)))
    xl = torch.from_numpy(rnn_file["lstm.input"].astype(np.float64))
    for s in range(2):
        attr, cls, fx, fb = integrated_gradients(lstm, xl[s], torch.zeros_like(xl[s]), 50)
        out[f"lstm.s{s}.ig.attr"] = attr
        out[f"lstm.s{s}.ig.class"] = np.array([cls], dtype=np.int64)
        out[f"lstm.s{s}.ig.f"] = np.array([fx, fb])
        out[f"lstm.s{s}.sal.attr"] = saliency(lstm, xl[s])
    path = os.path.join(GOLDEN, "explain.safetensors")
    size = write_safetensors(path, out, {"generator": GENERATOR, "torch": torch.__version__})
    print(f"wrote {path} ({size} bytes, {len(out)} tensors)")


if __name__ == "__main__":
    main()
