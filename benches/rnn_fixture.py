#!/usr/bin/env python3
"""Writes tests/fixtures/rnn_state_dicts.safetensors: PyTorch's `nn.RNN` (tanh), `nn.GRU` and
`nn.LSTM` state dicts with an input, initial states and the outputs PyTorch computes from them,
so that a test can load each state dict into wgnn's `Rnn` / `Gru` / `Lstm` and compare.

Every cell: input size 5, hidden size 7, 2 layers, bias, batch_first=False, no dropout,
unidirectional; built after `torch.manual_seed(SEED[cell])` with PyTorch's default
initialisation (U(-1/sqrt(7), 1/sqrt(7))). Then, from the same generator, the input
`[T=4, B=3, F=5]` and the initial states `[layers=2, B=3, H=7]` are drawn with `torch.randn`.
The expected outputs are computed in float64 from those exact float32 values (the module cast to
double) and rounded to float32 once, so they are the exact answer to within f32 rounding rather
than one f32 implementation's.

Tensors (all float32), for CELL in rnn, gru, lstm:
    CELL.weight_ih_l0 [G·7, 5]   CELL.weight_hh_l0 [G·7, 7]   CELL.bias_ih_l0 [G·7]   CELL.bias_hh_l0 [G·7]
    CELL.weight_ih_l1 [G·7, 7]   CELL.weight_hh_l1 [G·7, 7]   CELL.bias_ih_l1 [G·7]   CELL.bias_hh_l1 [G·7]
        (the state dict in PyTorch's names and layouts; G = 1 rnn, 3 gru (r, z, n), 4 lstm (i, f, g, o))
    CELL_io.input  [4, 3, 5]
    CELL_io.h0     [2, 3, 7]     (lstm also CELL_io.c0 [2, 3, 7])
    CELL_io.output [4, 3, 7]     (the last layer's h at every step)
    CELL_io.h_n    [2, 3, 7]     (lstm also CELL_io.c_n [2, 3, 7])
The inputs and expected values sit under `CELL_io.`, not `CELL.`, so that the tensors under
`CELL.` are exactly the module's state dict (nothing unexpected when loading by prefix).
The file's metadata (one key, `generator`) records the torch version, the shapes and the seeds;
regenerating with the same torch version gives the same bytes.

Regenerate (deterministic on CPU for a given torch version; commit the result):
    /work/venv-torch/bin/python benches/rnn_fixture.py            # or any python with torch, safetensors
    /work/venv-torch/bin/python benches/rnn_fixture.py --out other.safetensors
"""
import argparse
import os

import torch
import torch.nn as nn
from safetensors.torch import save_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "rnn_state_dicts.safetensors")
INPUT, HIDDEN, LAYERS, T, B = 5, 7, 2, 4, 3
SEED = {"rnn": 11, "gru": 12, "lstm": 13}
CELLS = {"rnn": lambda: nn.RNN(INPUT, HIDDEN, LAYERS, nonlinearity="tanh"),
         "gru": lambda: nn.GRU(INPUT, HIDDEN, LAYERS),
         "lstm": lambda: nn.LSTM(INPUT, HIDDEN, LAYERS)}


def cell_tensors(name):
    torch.manual_seed(SEED[name])
    module = CELLS[name]()
    x = torch.randn(T, B, INPUT)
    h0 = torch.randn(LAYERS, B, HIDDEN)
    out = {f"{name}.{k}": v.detach().clone().contiguous() for k, v in module.state_dict().items()}
    out[f"{name}_io.input"] = x
    out[f"{name}_io.h0"] = h0
    ref = module.double()
    with torch.no_grad():
        if name == "lstm":
            c0 = torch.randn(LAYERS, B, HIDDEN)
            y, (h_n, c_n) = ref(x.double(), (h0.double(), c0.double()))
            out[f"{name}_io.c0"] = c0
            out[f"{name}_io.c_n"] = c_n.float()
        else:
            y, h_n = ref(x.double(), h0.double())
    out[f"{name}_io.output"] = y.float()
    out[f"{name}_io.h_n"] = h_n.float()
    assert all(t.dtype == torch.float32 for t in out.values())
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=OUT)
    args = ap.parse_args()
    torch.set_num_threads(2)
    tensors = {}
    for name in CELLS:
        tensors.update(cell_tensors(name))
    # One metadata key: safetensors writes a map's keys in hash order, and one key keeps the
    # file byte-identical from run to run.
    seeds = ", ".join(f"{k} {v}" for k, v in SEED.items())
    meta = {"generator": f"benches/rnn_fixture.py, torch {torch.__version__}; input {INPUT}, hidden {HIDDEN}, "
                         f"layers {LAYERS}, T {T}, B {B}, batch_first false; seeds {seeds}"}
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    save_file(tensors, args.out, metadata=meta)
    print(f"{args.out}: {len(tensors)} tensors, {os.path.getsize(args.out)} bytes")
    for k in sorted(tensors):
        print(f"  {k} {list(tensors[k].shape)}")


if __name__ == "__main__":
    main()
