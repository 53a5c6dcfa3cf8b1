#!/usr/bin/env python3
"""Writes tests/fixtures/conv_transpose.safetensors: PyTorch's `conv_transpose2d` on small
inputs for strides 1 and 2, paddings 0 and 1, output padding 0 and 1 (below the stride), with
the gradients of `sum(out · r)` for a fixed random `r`, so that `tests/conv_transpose.rs`
compares wgnn's forward and backward with PyTorch's values.

Case `cK` (K = 0, 1, …) holds `cK.x [N, C_in, H, W]`, `cK.w [C_in, C_out, k, k]`,
`cK.b [C_out]`, `cK.r` (the output's shape), `cK.out`, `cK.dx`, `cK.dw`, `cK.db`, and
`cK.geom` = [stride, padding, output_padding] (float32). Computed in float64 from the float32
inputs and rounded once. The metadata records the torch version.

    /work/venv-torch/bin/python benches/conv_transpose_fixture.py
"""
import argparse

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

CASES = [
    # (N, C_in, C_out, H, W, k, stride, padding, output_padding)
    (2, 3, 4, 5, 4, 3, 1, 0, 0),
    (2, 3, 2, 4, 5, 3, 1, 1, 0),
    (1, 2, 3, 4, 4, 4, 2, 1, 0),  # DCGAN's upsampling layer
    (2, 3, 2, 3, 5, 3, 2, 0, 1),
    (2, 2, 3, 5, 3, 3, 2, 1, 1),
    (3, 4, 2, 1, 1, 4, 1, 0, 0),  # DCGAN's first layer: 1×1 → 4×4
]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="tests/fixtures/conv_transpose.safetensors")
    args = p.parse_args()
    gen = torch.Generator().manual_seed(2026)
    tensors = {}
    for i, (n, cin, cout, h, w, k, s, pad, op) in enumerate(CASES):
        x = torch.randn(n, cin, h, w, generator=gen)
        wt = torch.randn(cin, cout, k, k, generator=gen) * 0.5
        b = torch.randn(cout, generator=gen)
        x64, w64, b64 = (t.double().requires_grad_() for t in (x, wt, b))
        out = F.conv_transpose2d(x64, w64, b64, stride=s, padding=pad, output_padding=op)
        r = torch.randn(out.shape, generator=gen)
        (out * r.double()).sum().backward()
        c = f"c{i}"
        tensors.update({
            f"{c}.x": x, f"{c}.w": wt, f"{c}.b": b, f"{c}.r": r,
            f"{c}.out": out.detach().float(), f"{c}.dx": x64.grad.float(),
            f"{c}.dw": w64.grad.float(), f"{c}.db": b64.grad.float(),
            f"{c}.geom": torch.tensor([s, pad, op], dtype=torch.float32),
        })
    save_file({k: v.contiguous() for k, v in tensors.items()}, args.out,
              metadata={"generator": f"benches/conv_transpose_fixture.py, torch {torch.__version__}"})
    print(f"{args.out}: {len(CASES)} cases")


if __name__ == "__main__":
    main()
