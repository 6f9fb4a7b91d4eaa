#!/usr/bin/env python3
"""Generate testdata/golden/rnn.safetensors: PyTorch reference values for the
recurrent layers of package nn (lstm, gru, embedding, dense per time step).

The file holds three cases, each under its own prefix <case>:

  lstm        x (N=3, T=4, F=5) -> lstm1 LSTM(5, 7, num_layers=2, batch_first)
              -> last step of the top layer -> fc1 Linear(7, 3)
              -> CrossEntropyLoss (mean over N)
  gru         the same with gru1 GRU(5, 7, num_layers=2)
  embed_lstm  ids (N=3, T=5) -> embed1 Embedding(11, 6)
              -> lstm1 LSTM(6, 8), every step -> fc1 Linear(8, 11) per step
              -> CrossEntropyLoss over all N*T positions (mean)

with tensors

  <case>.input        (N, T, F) F32, or the token ids (N, T) as F32 values
  <case>.labels       (N,) I64, or (N, T) I64 for embed_lstm
  <case>.param.<p>    initial parameters (PyTorch default init under
                      torch.manual_seed(<case index>))
  <case>.logits       (N, classes), or (N, T, 11) for embed_lstm
  <case>.loss         [1]
  <case>.grad.<p>     d loss / d p
  <case>.adam.<p>     parameters after ONE torch.optim.Adam step (lr=1e-3,
                      defaults)

where <p> is PyTorch's state_dict name prefixed with the maas layer name
(lstm1.weight_ih_l0, lstm1.weight_hh_l0, lstm1.bias_ih_l0, lstm1.bias_hh_l0,
..._l1, gru1.*, embed1.weight, fc1.weight, fc1.bias), in PyTorch's layouts
(gates stacked i, f, g, o for the LSTM and r, z, n for the GRU).

As in gen_golden.py, random inputs are drawn in float32 so the stored F32
values are exactly the values used, the math is done in float64
(model.double()) and results are rounded to float32 when stored. The file is
written by gen_golden.py's hand-written safetensors writer.

Rerun from the repository root (any directory works) with:

    OPENBLAS_NUM_THREADS=1 /usr/bin/python3 testdata/gen_golden_rnn.py

The output is deterministic for a given PyTorch version (1.13 here).
"""

import os
import sys

import torch
import torch.nn as nn

sys.dont_write_bytecode = True  # no __pycache__ beside the sources
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_golden import OUT_DIR, write_safetensors  # noqa: E402

GENERATOR = "testdata/gen_golden_rnn.py"
ADAM = "lr=0.001 betas=(0.9,0.999) eps=1e-08 weight_decay=0, one step"


class LastStep(nn.Module):
    """An RNN followed by a Linear on the top layer's last h."""

    def __init__(self, rnn_cls, feat, hidden, layers, classes):
        super().__init__()
        self.rnn = rnn_cls(feat, hidden, num_layers=layers, batch_first=True)
        self.fc = nn.Linear(hidden, classes)

    def forward(self, x):
        out, _ = self.rnn(x)
        return self.fc(out[:, -1, :])


class TokenLM(nn.Module):
    """Embedding -> LSTM (every step) -> Linear per step."""

    def __init__(self, vocab, dim, hidden):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.rnn = nn.LSTM(dim, hidden, batch_first=True)
        self.fc = nn.Linear(hidden, vocab)

    def forward(self, ids):
        out, _ = self.rnn(self.embed(ids))
        return self.fc(out)


def run_case(model, rename, x32, inputs, labels):
    """Compute logits, loss, gradients and one Adam step in float64.

    rename maps a PyTorch module prefix ("rnn.", "fc.", "embed.") to the maas
    layer name ("lstm1.", ...)."""
    model = model.double()  # exact: float32 -> float64
    params = {}
    for name, p in model.named_parameters():
        prefix, rest = name.split(".", 1)
        params[rename[prefix] + "." + rest] = p

    out = {"input": x32, "labels": labels}
    for name, p in params.items():
        out["param." + name] = p.detach().clone()

    logits = model(inputs)
    classes = logits.shape[-1]
    loss = nn.CrossEntropyLoss()(logits.reshape(-1, classes), labels.reshape(-1))
    model.zero_grad()
    loss.backward()
    out["logits"] = logits.detach()
    out["loss"] = loss.detach().reshape(1)
    for name, p in params.items():
        out["grad." + name] = p.grad.detach().clone()

    torch.optim.Adam(model.parameters(), lr=1e-3).step()
    for name, p in params.items():
        out["adam." + name] = p.detach().clone()
    return out


def last_step_case(seed, rnn_cls, name):
    n, steps, feat, hidden, layers, classes = 3, 4, 5, 7, 2, 3
    torch.manual_seed(seed)
    model = LastStep(rnn_cls, feat, hidden, layers, classes)  # default init, float32
    x32 = torch.randn(n, steps, feat, dtype=torch.float32)
    labels = torch.randint(0, classes, (n,), dtype=torch.int64)
    return run_case(model, {"rnn": name, "fc": "fc1"}, x32, x32.double(), labels)


def token_case(seed):
    n, steps, vocab, dim, hidden = 3, 5, 11, 6, 8
    torch.manual_seed(seed)
    model = TokenLM(vocab, dim, hidden)
    ids = torch.randint(0, vocab, (n, steps), dtype=torch.int64)
    labels = torch.randint(0, vocab, (n, steps), dtype=torch.int64)
    rename = {"embed": "embed1", "rnn": "lstm1", "fc": "fc1"}
    return run_case(model, rename, ids.to(torch.float32), ids, labels)


def main():
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float32)
    os.makedirs(OUT_DIR, exist_ok=True)
    cases = {
        "lstm": (last_step_case(1, nn.LSTM, "lstm1"),
                 "x(3,4,5) -> LSTM(5,7,num_layers=2) last step -> Linear(7,3) -> CrossEntropyLoss"),
        "gru": (last_step_case(2, nn.GRU, "gru1"),
                "x(3,4,5) -> GRU(5,7,num_layers=2) last step -> Linear(7,3) -> CrossEntropyLoss"),
        "embed_lstm": (token_case(3),
                       "ids(3,5) -> Embedding(11,6) -> LSTM(6,8) every step -> Linear(8,11) per step"
                       " -> CrossEntropyLoss over 15 positions"),
    }
    tensors = {}
    meta = {"generator": GENERATOR, "torch": torch.__version__, "adam": ADAM}
    for case, (out, desc) in cases.items():
        for k, v in out.items():
            tensors[case + "." + k] = v
        meta["case." + case] = desc
    path = os.path.join(OUT_DIR, "rnn.safetensors")
    size = write_safetensors(path, tensors, meta)
    print("%-60s %9d bytes" % (os.path.relpath(path), size))
    return 0


if __name__ == "__main__":
    sys.exit(main())
