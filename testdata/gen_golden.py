#!/usr/bin/env python3
"""Generate the PyTorch golden files under testdata/golden/.

The Go code in this repository (the seed CNN, its backward pass and the
optimizers) is checked against these reference values. The script writes:

  golden/seed_cnn_28.safetensors  seed CNN on an MNIST-shaped batch (4, 1, 28, 28)
  golden/seed_cnn_32.safetensors  seed CNN on a CIFAR-shaped batch (3, 3, 32, 32)
  golden/optim.safetensors        SGD / Adam / AdamW update rules and
                                  clip_grad_norm_, checked in isolation

The seed CNN is

  conv1 Conv2d(C,32,3,p=1) -> ReLU -> MaxPool2d(2)
  conv2 Conv2d(32,64,3,p=1) -> ReLU -> MaxPool2d(2)
  conv3 Conv2d(64,128,3,p=1) -> ReLU -> MaxPool2d(2)
  Flatten -> fc1 Linear(128*S*S,128) -> ReLU -> fc2 Linear(128,10)
  loss = CrossEntropyLoss (mean over the batch)

with S = 3 for 28x28 inputs and S = 4 for 32x32 inputs. Its tensors are

  input (N,C,H,W) F32, labels (N,) I64,
  param.<p>  initial parameters (PyTorch default init under torch.manual_seed(0)),
  logits (N,10), loss [1],
  grad.<p>   d loss / d p,
  adam.<p>   parameters after ONE torch.optim.Adam step (lr=1e-3, defaults),

for p in conv1.weight, conv1.bias, ..., fc2.bias, in PyTorch layouts (conv
weights (OC,C,KH,KW), linear weights (out,in)).

optim.safetensors holds, for each config (sgd, sgd_momentum, sgd_nesterov,
sgd_dampening, adam, adam_wd, adamw; the hyper-parameters are in the
metadata under "config.<cfg>"), a length-37 start vector <cfg>.p0, five
gradients <cfg>.g1..g5 (randn with 3 entries of each scaled by 100) and the
parameters after each torch.optim step <cfg>.p1..p5. It also holds a
clip_grad_norm_ case: clip.g (37,) split into clip.a (20,) and clip.b (17,)
as the gradients of two parameters, clip.max_norm [1], the clipped gradients
clip.a_out, clip.b_out and the returned clip.total_norm [1].

All random inputs are drawn in float32 so that the stored F32 values are
exactly the values used; the math is then done in float64 (model.double(),
float64 optimizer state) and the results are rounded to float32 when stored.

The files are written in the safetensors format by hand (struct + json, no
safetensors package): little-endian, F32 tensors (I64 for labels), tensors
in sorted name order with contiguous offsets, header padded with spaces to a
multiple of 8 bytes.

Rerun from the repository root (any directory works) with:

    OPENBLAS_NUM_THREADS=1 python3 testdata/gen_golden.py

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
OUT_DIR = os.path.join(HERE, "golden")
GENERATOR = "testdata/gen_golden.py"

PARAM_NAMES = [
    "conv1.weight", "conv1.bias",
    "conv2.weight", "conv2.bias",
    "conv3.weight", "conv3.bias",
    "fc1.weight", "fc1.bias",
    "fc2.weight", "fc2.bias",
]


# --------------------------------------------------------------------------
# safetensors writer (by hand)

def _as_array(t):
    """Convert a tensor to a little-endian, C-order numpy array: I16 and U8
    stay as they are, other integers become I64 and floats F32."""
    if isinstance(t, torch.Tensor):
        t = t.detach().cpu().numpy()
    a = np.asarray(t)
    if a.dtype == np.int16:
        return np.ascontiguousarray(a, dtype="<i2"), "I16"
    if a.dtype == np.uint8:
        return np.ascontiguousarray(a, dtype="u1"), "U8"
    if a.dtype.kind in "iu":
        return np.ascontiguousarray(a, dtype="<i8"), "I64"
    return np.ascontiguousarray(a, dtype="<f4"), "F32"


def write_safetensors(path, tensors, metadata=None):
    """Write tensors (name -> tensor/array) to path in the safetensors format."""
    header = {}
    if metadata:
        # Sorted keys, like the Go encoder, so the files re-encode byte-identically.
        header["__metadata__"] = {str(k): str(v) for k, v in sorted(metadata.items())}
    chunks = []
    offset = 0
    for name in sorted(tensors):
        arr, dtype = _as_array(tensors[name])
        data = arr.tobytes(order="C")
        header[name] = {
            "dtype": dtype,
            "shape": list(arr.shape),
            "data_offsets": [offset, offset + len(data)],
        }
        chunks.append(data)
        offset += len(data)
    hdr = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hdr += b" " * (-len(hdr) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(hdr)))
        f.write(hdr)
        for c in chunks:
            f.write(c)
    os.replace(tmp, path)
    return os.path.getsize(path)


# --------------------------------------------------------------------------
# seed CNN

class SeedCNN(nn.Module):
    def __init__(self, channels, side):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, 32, 3, stride=1, padding=1)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
        self.conv3 = nn.Conv2d(64, 128, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.relu = nn.ReLU()
        self.flatten = nn.Flatten()
        s = side // 2 // 2 // 2
        self.fc1 = nn.Linear(128 * s * s, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = self.pool(self.relu(self.conv1(x)))
        x = self.pool(self.relu(self.conv2(x)))
        x = self.pool(self.relu(self.conv3(x)))
        x = self.flatten(x)
        x = self.relu(self.fc1(x))
        return self.fc2(x)


def seed_cnn(n, channels, side):
    torch.manual_seed(0)
    model = SeedCNN(channels, side)  # default init, float32
    x32 = torch.randn(n, channels, side, side, dtype=torch.float32)
    labels = torch.randint(0, 10, (n,), dtype=torch.int64)

    model = model.double()  # exact: float32 -> float64
    params = dict(model.named_parameters())
    assert sorted(params) == sorted(PARAM_NAMES), sorted(params)

    out = {"input": x32, "labels": labels}
    for name in PARAM_NAMES:
        out["param." + name] = params[name].detach().clone()

    logits = model(x32.double())
    loss = nn.CrossEntropyLoss()(logits, labels)
    model.zero_grad()
    loss.backward()
    out["logits"] = logits.detach()
    out["loss"] = loss.detach().reshape(1)
    for name in PARAM_NAMES:
        out["grad." + name] = params[name].grad.detach().clone()

    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    opt.step()
    for name in PARAM_NAMES:
        out["adam." + name] = params[name].detach().clone()
    return out


# --------------------------------------------------------------------------
# optimizers

OPTIM_CONFIGS = [
    ("sgd", torch.optim.SGD, dict(lr=0.1)),
    ("sgd_momentum", torch.optim.SGD, dict(lr=0.1, momentum=0.9, weight_decay=0.01)),
    ("sgd_nesterov", torch.optim.SGD,
     dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.001)),
    ("sgd_dampening", torch.optim.SGD, dict(lr=0.1, momentum=0.9, dampening=0.5)),
    ("adam", torch.optim.Adam, dict(lr=1e-2)),
    ("adam_wd", torch.optim.Adam,
     dict(lr=1e-2, weight_decay=0.01, betas=(0.8, 0.99), eps=1e-6)),
    ("adamw", torch.optim.AdamW, dict(lr=1e-2, weight_decay=0.01)),
]

OPTIM_LEN = 37
OPTIM_STEPS = 5


def optim_case(index, cls, kwargs):
    gen = torch.Generator().manual_seed(100 + index)
    p0 = torch.randn(OPTIM_LEN, generator=gen, dtype=torch.float32)
    grads = []
    for _ in range(OPTIM_STEPS):
        g = torch.randn(OPTIM_LEN, generator=gen, dtype=torch.float32)
        big = torch.randperm(OPTIM_LEN, generator=gen)[:3]
        g[big] *= 100.0  # scaled in float32, so the stored F32 is the value used
        grads.append(g)

    p = p0.double().clone().requires_grad_(True)
    opt = cls([p], **kwargs)
    out = {"p0": p0}
    for t, g in enumerate(grads, start=1):
        p.grad = g.double().clone()
        opt.step()
        out["g%d" % t] = g
        out["p%d" % t] = p.detach().clone()
    return out


def clip_case():
    gen = torch.Generator().manual_seed(200)
    g = torch.randn(OPTIM_LEN, generator=gen, dtype=torch.float32)
    a32, b32 = g[:20].clone(), g[20:].clone()
    pa = torch.zeros(20, dtype=torch.float64, requires_grad=True)
    pb = torch.zeros(17, dtype=torch.float64, requires_grad=True)
    pa.grad = a32.double().clone()
    pb.grad = b32.double().clone()
    max_norm = 1.0
    total = torch.nn.utils.clip_grad_norm_([pa, pb], max_norm)
    return {
        "clip.g": g,
        "clip.a": a32,
        "clip.b": b32,
        "clip.max_norm": torch.tensor([max_norm], dtype=torch.float64),
        "clip.a_out": pa.grad.detach().clone(),
        "clip.b_out": pb.grad.detach().clone(),
        "clip.total_norm": total.detach().reshape(1),
    }


def describe(kwargs):
    return json.dumps(kwargs, sort_keys=True, separators=(",", ":"))


def main():
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float32)
    os.makedirs(OUT_DIR, exist_ok=True)
    meta = {"generator": GENERATOR, "torch": torch.__version__}

    sizes = {}
    for fname, (n, c, side) in [("seed_cnn_28", (4, 1, 28)), ("seed_cnn_32", (3, 3, 32))]:
        path = os.path.join(OUT_DIR, fname + ".safetensors")
        m = dict(meta, model="seed_cnn", input_shape="%d,%d,%d,%d" % (n, c, side, side),
                 adam="lr=0.001 betas=(0.9,0.999) eps=1e-08 weight_decay=0, one step")
        sizes[path] = write_safetensors(path, seed_cnn(n, c, side), m)

    tensors = {}
    m = dict(meta)
    for i, (name, cls, kwargs) in enumerate(OPTIM_CONFIGS):
        for k, v in optim_case(i, cls, kwargs).items():
            tensors["%s.%s" % (name, k)] = v
        m["config." + name] = "%s %s" % (cls.__name__, describe(kwargs))
    tensors.update(clip_case())
    m["config.clip"] = "clip_grad_norm_ max_norm=1.0 norm_type=2"
    path = os.path.join(OUT_DIR, "optim.safetensors")
    sizes[path] = write_safetensors(path, tensors, m)

    for path, size in sizes.items():
        print("%-60s %9d bytes" % (os.path.relpath(path), size))
    print("total %d bytes" % sum(sizes.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
