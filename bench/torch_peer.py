#!/usr/bin/python3
"""PyTorch peer for maas benchmarks.

Builds the model described by a maas job spec (YAML) in PyTorch, with
PyTorch's default initialisation, and either

  throughput -f SPEC --threads N --steps K --warmup W [--batch B]
      times K training steps on synthetic data after W warm-up steps and
      prints one JSON line in the same format as `maas bench train`;

  train -f SPEC --data-dir DIR --threads N [--epochs E]
      trains on real MNIST with the spec's normalisation, optimizer and
      schedule, and prints one JSON line per epoch with the test loss and
      accuracy on the 10,000 test images.

Meant for Debian's python3-torch (CPU). OpenBLAS is forced single-threaded
(OPENBLAS_NUM_THREADS=1) before torch is imported: torch's own intra-op
pool (torch.set_num_threads) is the only source of parallelism, otherwise
the two thread pools oversubscribe the cores.
"""

import os

# Must happen before torch (and thus libblas) is loaded.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import gzip  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

try:
    import yaml
except ImportError:  # pragma: no cover
    sys.exit("torch_peer.py: PyYAML missing; apt-get install -y python3-yaml")


# ---------------------------------------------------------------- spec ----

def load_spec(path):
    with open(path) as f:
        spec = yaml.safe_load(f)
    if not isinstance(spec, dict) or "model" not in spec:
        sys.exit(f"torch_peer.py: {path}: not a job spec (no model)")
    spec.setdefault("name", os.path.splitext(os.path.basename(path))[0])
    return spec


class Reshape(nn.Module):
    """Reads each sample in the spec's model.input shape (row-major), as maas does."""

    def __init__(self, shape):
        super().__init__()
        self.shape = tuple(shape)

    def forward(self, x):
        return x.reshape(x.shape[0], *self.shape)


class Recurrent(nn.Module):
    """nn.LSTM / nn.GRU (batch_first) returning the last step's output or all steps."""

    def __init__(self, kind, features, units, layers, sequences):
        super().__init__()
        cls = nn.LSTM if kind == "lstm" else nn.GRU
        self.rnn = cls(features, units, num_layers=layers, batch_first=True)
        self.sequences = sequences

    def forward(self, x):
        out, _ = self.rnn(x)
        return out if self.sequences else out[:, -1]


def build_model(spec):
    """Returns (nn.Sequential, input_shape, number of outputs)."""
    shape = list(spec["model"]["input"])
    if len(shape) not in (2, 3):
        sys.exit(f"torch_peer.py: model.input must be [C,H,W] or [T,F], got {shape}")
    in_shape = tuple(shape)
    layers = [Reshape(shape)]
    for i, l in enumerate(spec["model"]["layers"]):
        t = l["type"]
        if t == "conv2d":
            if len(shape) != 3:
                sys.exit(f"torch_peer.py: layer {i}: conv2d after flatten")
            k = l["kernel"]
            s = l.get("stride", 1) or 1
            p = l.get("padding", 0) or 0
            layers.append(nn.Conv2d(shape[0], l["filters"], k, stride=s, padding=p))
            shape = [l["filters"],
                     (shape[1] + 2 * p - k) // s + 1,
                     (shape[2] + 2 * p - k) // s + 1]
        elif t == "relu":
            layers.append(nn.ReLU())
        elif t == "maxpool2d":
            k = l["kernel"]
            s = l.get("stride") or k
            layers.append(nn.MaxPool2d(k, stride=s))
            shape = [shape[0], (shape[1] - k) // s + 1, (shape[2] - k) // s + 1]
        elif t == "flatten":
            layers.append(nn.Flatten())
            shape = [math.prod(shape)]
        elif t == "dense":
            if len(shape) != 1:  # dense straight after a conv: flatten implicitly
                layers.append(nn.Flatten())
                shape = [math.prod(shape)]
            layers.append(nn.Linear(shape[0], l["units"]))
            shape = [l["units"]]
        elif t == "dropout":
            layers.append(nn.Dropout(l.get("rate", 0.5)))
        elif t in ("lstm", "gru"):
            if len(shape) != 2:
                sys.exit(f"torch_peer.py: layer {i}: {t} needs a (T, F) input, got {shape}")
            seq = bool(l.get("return_sequences", False))
            layers.append(Recurrent(t, shape[1], l["units"], l.get("layers", 1) or 1, seq))
            shape = [shape[0], l["units"]] if seq else [l["units"]]
        else:
            sys.exit(f"torch_peer.py: layer {i}: unsupported type {t!r}")
    if len(shape) != 1:
        sys.exit(f"torch_peer.py: model must end in a dense layer, output shape {shape}")
    loss = spec.get("loss", "softmax_cross_entropy")
    if loss != "softmax_cross_entropy":
        sys.exit(f"torch_peer.py: unsupported loss {loss!r}")
    return nn.Sequential(*layers), in_shape, shape[0]


def build_optimizer(spec, params):
    o = spec.get("optimizer") or {}
    t = o.get("type", "sgd")
    lr = float(o.get("lr", 0.01))
    wd = o.get("weight_decay")
    if t == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=float(o.get("momentum", 0) or 0),
                               nesterov=bool(o.get("nesterov", False)),
                               weight_decay=float(wd or 0))
    betas = tuple(float(b) for b in (o.get("betas") or (0.9, 0.999)))
    eps = float(o.get("eps", 1e-8) or 1e-8)
    if t == "adam":
        return torch.optim.Adam(params, lr=lr, betas=betas, eps=eps, weight_decay=float(wd or 0))
    if t == "adamw":
        # PyTorch's AdamW default decay (0.01) applies when the spec gives none.
        return torch.optim.AdamW(params, lr=lr, betas=betas, eps=eps,
                                 weight_decay=0.01 if wd is None else float(wd))
    sys.exit(f"torch_peer.py: unsupported optimizer {t!r}")


def lr_schedule(spec, steps_per_epoch, total_steps):
    """Returns f(step) -> learning rate, step counted from 0 over the run."""
    o = spec.get("optimizer") or {}
    base = float(o.get("lr", 0.01))
    s = spec.get("schedule") or {}
    t = s.get("type", "constant") or "constant"
    warm = int(s.get("warmup_steps", 0) or 0)
    step_size = int(s.get("step_size", 1) or 1)
    gamma = float(s.get("gamma", 0.1) if s.get("gamma") is not None else 0.1)
    min_lr = float(s.get("min_lr", 0) or 0)
    if t not in ("constant", "step", "cosine"):
        sys.exit(f"torch_peer.py: unsupported schedule {t!r}")

    def f(step):
        if step < warm:
            return base * (step + 1) / warm
        if t == "constant":
            return base
        if t == "step":
            return base * gamma ** ((step // steps_per_epoch) // step_size)
        span = max(1, total_steps - warm)
        p = min(1.0, (step - warm) / span)
        return min_lr + (base - min_lr) * 0.5 * (1 + math.cos(math.pi * p))
    return f


def clip_norm(spec):
    return float((spec.get("optimizer") or {}).get("clip_norm", 0) or 0)


def setup_threads(n):
    torch.set_num_threads(n)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass


# ---------------------------------------------------------- throughput ----

def cmd_throughput(a):
    setup_threads(a.threads)
    spec = load_spec(a.file)
    seed = int(spec.get("seed") if spec.get("seed") is not None else 1)
    torch.manual_seed(seed)
    model, in_shape, classes = build_model(spec)
    model.train()
    opt = build_optimizer(spec, model.parameters())
    clip = clip_norm(spec)
    batch = a.batch or int(spec.get("batch_size", 64))
    x = torch.randn(batch, *in_shape)
    y = torch.randint(0, classes, (batch,))

    def step():
        out = model(x)
        loss = F.cross_entropy(out, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()

    for _ in range(a.warmup):
        step()
    t0 = time.perf_counter()
    for _ in range(a.steps):
        step()
    dt = time.perf_counter() - t0
    print(json.dumps({
        "impl": "pytorch",
        "torch": torch.__version__,
        "threads": a.threads,
        "batch": batch,
        "steps": a.steps,
        "samples_per_sec": round(a.steps * batch / dt, 2),
        "spec": spec["name"],
    }), flush=True)


# --------------------------------------------------------------- train ----

def read_idx(path, magic, header):
    with gzip.open(path, "rb") as f:
        data = f.read()
    got = int.from_bytes(data[0:4], "big")
    if got != magic:
        sys.exit(f"torch_peer.py: {path}: bad IDX magic {got:#x}, want {magic:#x}")
    n = int.from_bytes(data[4:8], "big")
    arr = np.frombuffer(data, dtype=np.uint8, offset=header)
    return n, arr


def load_mnist(d, split, mean, std):
    prefix = "train" if split == "train" else "t10k"
    n, img = read_idx(os.path.join(d, f"{prefix}-images-idx3-ubyte.gz"), 0x803, 16)
    m, lab = read_idx(os.path.join(d, f"{prefix}-labels-idx1-ubyte.gz"), 0x801, 8)
    if n != m:
        sys.exit(f"torch_peer.py: {split}: {n} images but {m} labels")
    x = torch.from_numpy(img.reshape(n, 1, 28, 28).astype(np.float32) / 255.0)
    x = (x - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)
    y = torch.from_numpy(lab.astype(np.int64))
    return x, y


@torch.no_grad()
def evaluate(model, x, y, batch=1000):
    model.eval()
    total_loss, correct = 0.0, 0
    for i in range(0, len(x), batch):
        out = model(x[i:i + batch])
        total_loss += F.cross_entropy(out, y[i:i + batch], reduction="sum").item()
        correct += (out.argmax(1) == y[i:i + batch]).sum().item()
    model.train()
    return total_loss / len(x), 100.0 * correct / len(x)


def cmd_train(a):
    setup_threads(a.threads)
    spec = load_spec(a.file)
    ds = spec.get("dataset") or {}
    if ds.get("kind", "mnist") != "mnist":
        sys.exit(f"torch_peer.py: train supports only dataset.kind mnist, got {ds.get('kind')!r}")
    data_dir = a.data_dir or ds.get("path")
    if not data_dir:
        sys.exit("torch_peer.py: --data-dir is required (spec has no dataset.path)")
    norm = ds.get("normalize") or {}
    mean = torch.tensor([float(v) for v in norm.get("mean", [0.0])])
    std = torch.tensor([float(v) for v in norm.get("std", [1.0])])

    xtr, ytr = load_mnist(data_dir, "train", mean, std)
    xte, yte = load_mnist(data_dir, "test", mean, std)

    seed = int(spec.get("seed") if spec.get("seed") is not None else 1)
    torch.manual_seed(seed)
    model, in_shape, _ = build_model(spec)
    if math.prod(xtr.shape[1:]) != math.prod(in_shape):
        sys.exit(f"torch_peer.py: data shape {tuple(xtr.shape[1:])} does not hold model.input {in_shape}")
    model.train()
    opt = build_optimizer(spec, model.parameters())
    clip = clip_norm(spec)
    batch = int(spec.get("batch_size", 64))
    epochs = a.epochs or int(spec.get("epochs", 1))
    shuffle = bool(spec.get("shuffle", True))
    gen = torch.Generator().manual_seed(seed)
    n = len(xtr)
    steps_per_epoch = (n + batch - 1) // batch  # last partial batch kept
    sched = lr_schedule(spec, steps_per_epoch, epochs * steps_per_epoch)

    step = 0
    for epoch in range(1, epochs + 1):
        t0 = time.perf_counter()
        order = torch.randperm(n, generator=gen) if shuffle else torch.arange(n)
        stopped = False
        for i in range(0, n, batch):
            if a.max_steps and step >= a.max_steps:
                stopped = True
                break
            idx = order[i:i + batch]
            lr = sched(step)
            for g in opt.param_groups:
                g["lr"] = lr
            out = model(xtr[idx])
            loss = F.cross_entropy(out, ytr[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if clip > 0:
                nn.utils.clip_grad_norm_(model.parameters(), clip)
            opt.step()
            step += 1
        secs = time.perf_counter() - t0
        test_loss, test_acc = evaluate(model, xte, yte)
        rec = {
            "impl": "pytorch",
            "epoch": epoch,
            "test_loss": round(test_loss, 6),
            "test_accuracy": round(test_acc, 3),
            "seconds": round(secs, 2),
            "steps": step,
            "lr": sched(max(0, step - 1)),
            "threads": a.threads,
            "spec": spec["name"],
        }
        print(json.dumps(rec), flush=True)
        if stopped or (a.max_steps and step >= a.max_steps):
            break


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)

    t = sub.add_parser("throughput", help="time training steps on synthetic data")
    t.add_argument("-f", "--file", required=True, help="job spec (YAML)")
    t.add_argument("--threads", type=int, default=1)
    t.add_argument("--steps", type=int, default=30)
    t.add_argument("--warmup", type=int, default=5)
    t.add_argument("--batch", type=int, default=0, help="batch size (default: the spec's)")
    t.set_defaults(fn=cmd_throughput)

    r = sub.add_parser("train", help="train on real MNIST, evaluate after each epoch")
    r.add_argument("-f", "--file", required=True, help="job spec (YAML)")
    r.add_argument("--data-dir", default="", help="directory holding the MNIST IDX .gz files")
    r.add_argument("--threads", type=int, default=1)
    r.add_argument("--epochs", type=int, default=0, help="epochs (default: the spec's)")
    # Smoke tests only: stop after this many steps in total, then evaluate.
    r.add_argument("--max-steps", type=int, default=0, help=argparse.SUPPRESS)
    r.set_defaults(fn=cmd_train)

    a = p.parse_args()
    if a.threads < 1:
        p.error("--threads must be >= 1")
    a.fn(a)


if __name__ == "__main__":
    main()
