#!/usr/bin/env python3
"""Generates PyTorch op-parity fixtures: forward outputs and input gradients of ~60 ops on small,
awkwardly-shaped, broadcasting inputs, for a Rust test to compare wgnn against.

    python3 -m venv /work/venv-torch
    /work/venv-torch/bin/pip install torch safetensors numpy
    /work/venv-torch/bin/python benches/op_parity.py --out tests/fixtures

(`pip install torch --index-url https://download.pytorch.org/whl/cpu` gives a smaller CPU-only
wheel where that index is reachable; the plain PyPI wheel works the same.)

Writes OUT/op_parity.safetensors (all tensors) and OUT/op_parity.json (the case list):

    {"generator": "benches/op_parity.py", "torch_version": "...", "cases": [
      {"name": "add_bcast_col",          # unique, [a-z0-9_]
       "op": "add",                      # op id
       "args": {...},                    # op keyword args
       "inputs": ["add_bcast_col.in0", "add_bcast_col.in1"],   # tensors, positional order
       "int_inputs": [false, false],     # true: int64 tensor (labels / indices)
       "grad_inputs": [true, true],      # whether that input's gradient is checked
       "output": "add_bcast_col.out",    # float32 (int64 for argmax; 0/1 float32 for comparisons)
       "grad_output": "add_bcast_col.gout" or null,   # upstream gradient, same shape as output
       "grads": ["add_bcast_col.grad0", "add_bcast_col.grad1"]}  # d(sum(out*gout))/d(in_i) or null
    ]}

Everything is float32 on the CPU. torch.manual_seed(0) is set, and each case draws its inputs
from its own generator seeded with crc32(case name), so adding or removing a case leaves every
other case's tensors unchanged. Re-running the script reproduces the files byte for byte.
Boolean masks (where's condition, masked_fill's mask) are stored as float32 0/1 and converted to
bool before calling torch. Scalar outputs (full reductions, mean losses) are 0-d tensors, and so
are their grad_outputs.
"""
import argparse
import json
import os
import struct
import zlib

import torch
import torch.nn.functional as F
from safetensors import safe_open

GENERATOR = "benches/op_parity.py"


# ----------------------------------------------------------------------------------------------
# Input makers. Each takes the case's generator first.

def randn(g, *shape):
    return torch.randn(tuple(shape), generator=g, dtype=torch.float32)


def uniform(g, lo, hi, *shape):
    return torch.rand(tuple(shape), generator=g, dtype=torch.float32) * (hi - lo) + lo


def away_from(g, points, gap, *shape):
    """N(0,1) values at least `gap` from every value in `points` (resamples offending elements)."""
    x = randn(g, *shape)
    for _ in range(1000):
        bad = torch.zeros(x.shape, dtype=torch.bool)
        for p in points:
            bad |= (x - p).abs() < gap
        if not bad.any():
            return x
        x = torch.where(bad, randn(g, *shape), x)
    raise RuntimeError("away_from: could not sample")


def nonzero(g, *shape, lo=0.1, hi=2.0):
    """Values with |x| in [lo, hi] and a random sign."""
    sign = torch.where(torch.rand(*shape, generator=g) < 0.5, -1.0, 1.0)
    return sign * uniform(g, lo, hi, *shape)


def distinct(g, *shape, step=0.05):
    """All elements distinct (pairwise gap >= step), shuffled, roughly centred on 0: no ties for
    max / min / argmax / amax."""
    n = 1
    for s in shape:
        n *= s
    perm = torch.randperm(n, generator=g).to(torch.float32)
    return ((perm - (n - 1) / 2) * step).reshape(*shape)


def no_ties(g, sa, sb, gap=0.05):
    """Two N(0,1) tensors whose broadcast elementwise differences are all >= gap in magnitude."""
    for _ in range(1000):
        a, b = randn(g, *sa), randn(g, *sb)
        if ((a - b).abs() >= gap).all():
            return a, b
    raise RuntimeError("no_ties: could not sample")


def small_ints(g, *shape, hi=3):
    return torch.randint(0, hi, shape, generator=g).to(torch.float32)


def mask(g, *shape):
    return (torch.rand(*shape, generator=g) < 0.5).to(torch.float32)


def labels(g, n_classes, *shape):
    return torch.randint(0, n_classes, shape, generator=g, dtype=torch.int64)


# ----------------------------------------------------------------------------------------------

class Builder:
    def __init__(self):
        self.cases = []
        self.tensors = {}
        self.names = set()

    def gen(self, name):
        g = torch.Generator()
        g.manual_seed(zlib.crc32(name.encode()))
        return g

    def add(self, name, op, args, make, fn, grad=None, differentiable=True):
        """make(g) -> list of input tensors; fn(*inputs) -> output. Integer (int64) inputs are
        detected from dtype. grad: per-input bools (default: every float input when
        differentiable)."""
        assert name not in self.names, name
        assert all(c.islower() or c.isdigit() or c == "_" for c in name), name
        self.names.add(name)
        g = self.gen(name)
        inputs = [t.contiguous() for t in make(g)]
        int_inputs = [not t.is_floating_point() for t in inputs]
        for t, is_int in zip(inputs, int_inputs):
            assert t.dtype == (torch.int64 if is_int else torch.float32), (name, t.dtype)
        if grad is None:
            grad = [differentiable and not i for i in int_inputs]
        assert len(grad) == len(inputs)
        assert differentiable or not any(grad)

        leaves = []
        for t, rg in zip(inputs, grad):
            leaf = t.clone()
            if rg:
                leaf.requires_grad_(True)
            leaves.append(leaf)
        out = fn(*leaves)
        assert torch.isfinite(out.detach().to(torch.float64)).all(), name

        in_names = [f"{name}.in{i}" for i in range(len(inputs))]
        for n, t in zip(in_names, inputs):
            self.tensors[n] = t
        self.tensors[f"{name}.out"] = out.detach().contiguous().clone()
        gout_name = None
        grad_names = [None] * len(inputs)
        if differentiable:
            assert out.dtype == torch.float32, name
            gout = randn(g, *out.shape)
            out.backward(gout)
            gout_name = f"{name}.gout"
            self.tensors[gout_name] = gout
            for i, (leaf, rg) in enumerate(zip(leaves, grad)):
                if rg:
                    assert leaf.grad is not None, (name, i)
                    assert torch.isfinite(leaf.grad).all(), (name, i)
                    grad_names[i] = f"{name}.grad{i}"
                    self.tensors[grad_names[i]] = leaf.grad.detach().contiguous().clone()
        self.cases.append({
            "name": name,
            "op": op,
            "args": args,
            "inputs": in_names,
            "int_inputs": int_inputs,
            "grad_inputs": list(grad),
            "output": f"{name}.out",
            "grad_output": gout_name,
            "grads": grad_names,
        })


def build():
    b = Builder()

    # -- binary, broadcasting ------------------------------------------------------------------
    bin_shapes = {
        "same": ([3, 5], [3, 5]),
        "bcast_col": ([2, 3, 4], [3, 1]),
        "bcast_row": ([4], [2, 3, 4]),
        "bcast_both": ([2, 1, 4], [3, 4]),
    }
    rank5 = ([2, 1, 3, 1, 2], [2, 1, 3, 1])  # -> [2, 2, 3, 3, 2]
    binary = {
        "add": (torch.add, lambda g, s: randn(g, *s), lambda g, s: randn(g, *s)),
        "sub": (torch.sub, lambda g, s: randn(g, *s), lambda g, s: randn(g, *s)),
        "mul": (torch.mul, lambda g, s: randn(g, *s), lambda g, s: randn(g, *s)),
        "div": (torch.div, lambda g, s: randn(g, *s), lambda g, s: nonzero(g, *s, lo=0.5, hi=2.0)),
        "pow": (torch.pow, lambda g, s: uniform(g, 0.5, 2.0, *s), lambda g, s: uniform(g, -2.0, 2.0, *s)),
    }
    for op, (fn, ma, mb) in binary.items():
        variants = dict(bin_shapes)
        if op in ("add", "mul"):
            variants["rank5"] = rank5
        for tag, (sa, sb) in variants.items():
            b.add(f"{op}_{tag}", op, {}, lambda g, sa=sa, sb=sb, ma=ma, mb=mb: [ma(g, sa), mb(g, sb)], fn)
    for op, fn in (("maximum", torch.maximum), ("minimum", torch.minimum)):
        for tag, (sa, sb) in bin_shapes.items():
            b.add(f"{op}_{tag}", op, {}, lambda g, sa=sa, sb=sb: list(no_ties(g, sa, sb)), fn)

    # -- comparisons (forward only, 0/1 float32 output) -----------------------------------------
    cmp_shapes = {"same": ([3, 4], [3, 4]), "bcast": ([2, 3, 4], [3, 1])}
    for op, fn in (("eq", torch.eq), ("lt", torch.lt), ("gt", torch.gt), ("le", torch.le), ("ge", torch.ge)):
        for tag, (sa, sb) in cmp_shapes.items():
            b.add(f"{op}_{tag}", op, {},
                  lambda g, sa=sa, sb=sb: [small_ints(g, *sa), small_ints(g, *sb)],
                  lambda x, y, fn=fn: fn(x, y).to(torch.float32), differentiable=False)

    # -- scalar ops ----------------------------------------------------------------------------
    b.add("add_scalar", "add_scalar", {"value": 1.5}, lambda g: [randn(g, 2, 3, 5)], lambda x: x + 1.5)
    b.add("mul_scalar", "mul_scalar", {"value": -0.75}, lambda g: [randn(g, 2, 3, 5)], lambda x: x * -0.75)
    b.add("pow_scalar_3", "pow_scalar", {"exponent": 3.0}, lambda g: [randn(g, 3, 7)], lambda x: torch.pow(x, 3.0))
    b.add("pow_scalar_0_5", "pow_scalar", {"exponent": 0.5}, lambda g: [uniform(g, 0.5, 3.0, 3, 7)],
          lambda x: torch.pow(x, 0.5))
    b.add("pow_scalar_2", "pow_scalar", {"exponent": 2.0}, lambda g: [randn(g, 5)], lambda x: torch.pow(x, 2.0))
    b.add("pow_scalar_neg1_5", "pow_scalar", {"exponent": -1.5}, lambda g: [uniform(g, 0.5, 3.0, 2, 5)],
          lambda x: torch.pow(x, -1.5))

    # -- unary ---------------------------------------------------------------------------------
    positive = lambda g, s: uniform(g, 0.5, 3.0, *s)
    normal = lambda g, s: randn(g, *s)
    nz = lambda g, s: nonzero(g, *s)
    unary = [
        ("neg", {}, torch.neg, normal),
        ("abs", {}, torch.abs, nz),
        ("sqrt", {}, torch.sqrt, positive),
        ("rsqrt", {}, torch.rsqrt, positive),
        ("exp", {}, torch.exp, normal),
        ("log", {}, torch.log, positive),
        ("tanh", {}, torch.tanh, normal),
        ("sigmoid", {}, torch.sigmoid, normal),
        ("relu", {}, torch.relu, nz),
        ("gelu", {}, F.gelu, normal),
        ("silu", {}, F.silu, normal),
        ("softplus", {}, F.softplus, normal),
        ("leaky_relu", {"negative_slope": 0.1}, lambda x: F.leaky_relu(x, 0.1), nz),
    ]
    for op, args, fn, make in unary:
        for tag, s in (("1d", [7]), ("3d", [2, 3, 5])):
            b.add(f"{op}_{tag}", op, args, lambda g, s=s, make=make: [make(g, s)], fn)
    for tag, s in (("1d", [7]), ("3d", [2, 3, 5])):
        b.add(f"clamp_{tag}", "clamp", {"min": -0.5, "max": 0.5},
              lambda g, s=s: [away_from(g, [-0.5, 0.5], 0.01, *s)], lambda x: torch.clamp(x, -0.5, 0.5))
    b.add("clamp_min_only", "clamp", {"min": 0.0}, lambda g: [nonzero(g, 3, 5)], lambda x: torch.clamp(x, min=0.0))

    # -- matmul --------------------------------------------------------------------------------
    mm = [
        ("1d_1d", [5], [5]),
        ("2d_2d", [3, 5], [5, 4]),
        ("1d_2d", [3], [3, 4]),
        ("2d_1d", [3, 4], [4]),
        ("1d_3d", [4], [2, 4, 3]),
        ("3d_1d", [2, 3, 4], [4]),
        ("bcast_4d_3d", [2, 1, 3, 4], [5, 4, 2]),
        ("3d_2d", [4, 3, 5], [5, 2]),
        ("batched_3d_3d", [2, 3, 5], [2, 5, 1]),
    ]
    for tag, sa, sb in mm:
        b.add(f"matmul_{tag}", "matmul", {}, lambda g, sa=sa, sb=sb: [randn(g, *sa), randn(g, *sb)], torch.matmul)

    # -- shape ops -----------------------------------------------------------------------------
    b.add("transpose_3d", "transpose", {"dim0": 0, "dim1": 2}, lambda g: [randn(g, 2, 3, 4)],
          lambda x: x.transpose(0, 2))
    b.add("permute_4d", "permute", {"dims": [2, 0, 3, 1]}, lambda g: [randn(g, 2, 3, 4, 1)],
          lambda x: x.permute(2, 0, 3, 1))
    b.add("reshape_3d", "reshape", {"shape": [3, -1]}, lambda g: [randn(g, 2, 3, 4)], lambda x: x.reshape(3, -1))
    b.add("flatten_3d", "flatten", {"start_dim": 1, "end_dim": -1}, lambda g: [randn(g, 2, 3, 5)],
          lambda x: torch.flatten(x, 1, -1))
    b.add("squeeze_dim1", "squeeze", {"dim": 1}, lambda g: [randn(g, 3, 1, 4)], lambda x: x.squeeze(1))
    b.add("unsqueeze_last", "unsqueeze", {"dim": -1}, lambda g: [randn(g, 3, 4)], lambda x: x.unsqueeze(-1))
    b.add("expand_3d", "expand", {"shape": [4, 3, 5]}, lambda g: [randn(g, 3, 1)], lambda x: x.expand(4, 3, 5))
    b.add("cat_two", "cat", {"dim": 1}, lambda g: [randn(g, 2, 3), randn(g, 2, 5)],
          lambda *xs: torch.cat(xs, dim=1))
    b.add("cat_three", "cat", {"dim": 1}, lambda g: [randn(g, 2, 3, 4), randn(g, 2, 1, 4), randn(g, 2, 5, 4)],
          lambda *xs: torch.cat(xs, dim=1))
    b.add("stack_three", "stack", {"dim": 0}, lambda g: [randn(g, 3, 4), randn(g, 3, 4), randn(g, 3, 4)],
          lambda *xs: torch.stack(xs, dim=0))
    b.add("narrow_3d", "narrow", {"dim": 1, "start": 1, "length": 2}, lambda g: [randn(g, 3, 5, 2)],
          lambda x: torch.narrow(x, 1, 1, 2))

    # -- reductions ----------------------------------------------------------------------------
    def all_dims(x, dims):
        return list(range(x.dim())) if dims is None else dims

    red = [
        ("sum", lambda x, d, k: torch.sum(x, dim=d, keepdim=k) if d is not None else torch.sum(x), randn, {}),
        ("mean", lambda x, d, k: torch.mean(x, dim=d, keepdim=k) if d is not None else torch.mean(x), randn, {}),
        ("var", lambda x, d, k: torch.var(x, dim=d, keepdim=k, correction=1), randn, {"correction": 1}),
        ("logsumexp", lambda x, d, k: torch.logsumexp(x, dim=all_dims(x, d), keepdim=k), randn, {}),
        ("amax", lambda x, d, k: torch.amax(x, dim=all_dims(x, d), keepdim=k), distinct, {}),
    ]
    red_variants = [
        ("dims02_keep", [3, 4, 5], [0, 2], True),
        ("neg_dim", [3, 4, 5], [-1], False),
        ("mid_dim", [2, 7, 3], [-2], False),
        ("full", [3, 5], None, False),
    ]
    for op, fn, make, extra in red:
        for tag, s, d, k in red_variants:
            args = {"dims": d, "keepdim": k, **extra}
            b.add(f"{op}_{tag}", op, args, lambda g, s=s, make=make: [make(g, *s)],
                  lambda x, d=d, k=k, fn=fn: fn(x, d, k))
    for op, fn in (("max", torch.max), ("min", torch.min)):
        for tag, s, d, k in (("dim1_keep", [3, 4, 5], 1, True), ("neg_dim", [3, 4, 5], -1, False),
                             ("2d_dim0", [5, 3], 0, False)):
            b.add(f"{op}_{tag}", op, {"dim": d, "keepdim": k}, lambda g, s=s: [distinct(g, *s)],
                  lambda x, d=d, k=k, fn=fn: fn(x, d, keepdim=k).values)
    for tag, s, d, k in (("dim1_keep", [3, 4, 5], 1, True), ("neg_dim", [3, 4, 5], -1, False),
                         ("2d_dim0", [5, 3], 0, False)):
        b.add(f"argmax_{tag}", "argmax", {"dim": d, "keepdim": k}, lambda g, s=s: [distinct(g, *s)],
              lambda x, d=d, k=k: torch.argmax(x, dim=d, keepdim=k), differentiable=False)

    # -- softmax family ------------------------------------------------------------------------
    for op, fn in (("softmax", F.softmax), ("log_softmax", F.log_softmax)):
        for tag, s, d in (("mid", [2, 5, 3], 1), ("last", [2, 3, 7], -1), ("2d_last", [4, 5], 1)):
            b.add(f"{op}_{tag}", op, {"dim": d}, lambda g, s=s: [randn(g, *s)], lambda x, d=d, fn=fn: fn(x, dim=d))

    # -- losses --------------------------------------------------------------------------------
    b.add("cross_entropy_2d_mean", "cross_entropy", {"reduction": "mean"},
          lambda g: [randn(g, 5, 4), labels(g, 4, 5)], lambda x, y: F.cross_entropy(x, y, reduction="mean"))
    b.add("cross_entropy_3d_mean", "cross_entropy", {"reduction": "mean"},
          lambda g: [randn(g, 2, 4, 3), labels(g, 4, 2, 3)], lambda x, y: F.cross_entropy(x, y, reduction="mean"))
    b.add("cross_entropy_2d_sum", "cross_entropy", {"reduction": "sum"},
          lambda g: [randn(g, 3, 7), labels(g, 7, 3)], lambda x, y: F.cross_entropy(x, y, reduction="sum"))
    b.add("nll_loss_mean", "nll_loss", {"reduction": "mean"},
          lambda g: [F.log_softmax(randn(g, 5, 3), dim=1), labels(g, 3, 5)],
          lambda x, y: F.nll_loss(x, y, reduction="mean"))
    b.add("mse_loss_mean", "mse_loss", {"reduction": "mean"}, lambda g: [randn(g, 3, 5), randn(g, 3, 5)],
          lambda x, y: F.mse_loss(x, y, reduction="mean"))
    b.add("mse_loss_mean_3d", "mse_loss", {"reduction": "mean"}, lambda g: [randn(g, 2, 3, 4), randn(g, 2, 3, 4)],
          lambda x, y: F.mse_loss(x, y, reduction="mean"))
    b.add("bce_with_logits_mean", "binary_cross_entropy_with_logits", {"reduction": "mean"},
          lambda g: [randn(g, 4, 3), uniform(g, 0.0, 1.0, 4, 3)],
          lambda x, y: F.binary_cross_entropy_with_logits(x, y, reduction="mean"), grad=[True, False])

    # -- indexing ------------------------------------------------------------------------------
    b.add("index_select_2d", "index_select", {"dim": 1},
          lambda g: [randn(g, 3, 5), torch.tensor([4, 0, 2, 2, 1], dtype=torch.int64)],
          lambda x, i: torch.index_select(x, 1, i))
    b.add("index_select_3d", "index_select", {"dim": 1},
          lambda g: [randn(g, 2, 5, 3), torch.cat([labels(g, 5, 5), torch.tensor([3, 3], dtype=torch.int64)])],
          lambda x, i: torch.index_select(x, 1, i))
    b.add("gather_2d", "gather", {"dim": 1}, lambda g: [randn(g, 3, 5), labels(g, 5, 3, 4)],
          lambda x, i: torch.gather(x, 1, i))
    b.add("gather_3d", "gather", {"dim": 1}, lambda g: [randn(g, 2, 5, 3), labels(g, 5, 2, 7, 3)],
          lambda x, i: torch.gather(x, 1, i))
    b.add("where_bcast", "where", {}, lambda g: [mask(g, 2, 3, 4), randn(g, 3, 4), randn(g, 2, 1, 4)],
          lambda c, x, y: torch.where(c.bool(), x, y), grad=[False, True, True])
    b.add("where_mask_bcast", "where", {}, lambda g: [mask(g, 3, 1), randn(g, 2, 3, 5), randn(g, 5)],
          lambda c, x, y: torch.where(c.bool(), x, y), grad=[False, True, True])
    b.add("masked_fill_bcast", "masked_fill", {"value": -1.0}, lambda g: [randn(g, 2, 3, 4), mask(g, 3, 1)],
          lambda x, m: x.masked_fill(m.bool(), -1.0), grad=[True, False])
    b.add("masked_fill_same", "masked_fill", {"value": -1.0}, lambda g: [randn(g, 3, 5), mask(g, 3, 5)],
          lambda x, m: x.masked_fill(m.bool(), -1.0), grad=[True, False])

    # -- linear / layer_norm -------------------------------------------------------------------
    b.add("linear_5x4_3", "linear", {}, lambda g: [randn(g, 5, 4), randn(g, 3, 4), randn(g, 3)], F.linear)
    b.add("linear_1x7_2", "linear", {}, lambda g: [randn(g, 1, 7), randn(g, 2, 7), randn(g, 2)], F.linear)
    b.add("layer_norm_2d", "layer_norm", {"normalized_shape": [5], "eps": 1e-5},
          lambda g: [randn(g, 4, 5), randn(g, 5), randn(g, 5)],
          lambda x, w, bb: F.layer_norm(x, [5], w, bb, eps=1e-5))
    b.add("layer_norm_3d", "layer_norm", {"normalized_shape": [7], "eps": 1e-5},
          lambda g: [randn(g, 2, 3, 7) * 2.0 + 0.5, randn(g, 7), randn(g, 7)],
          lambda x, w, bb: F.layer_norm(x, [7], w, bb, eps=1e-5))

    return b


def save_safetensors(tensors, path, metadata):
    """Writes the safetensors format by hand with a sorted header, so that the file is identical
    byte for byte on every run (safetensors' own writer orders its header by hash)."""
    dtypes = {torch.float32: "F32", torch.int64: "I64"}
    header = {"__metadata__": dict(sorted(metadata.items()))}
    blobs, offset = [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous()
        data = t.numpy().tobytes()  # little-endian on every platform torch runs on here
        header[name] = {"dtype": dtypes[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for data in blobs:
            f.write(data)


def check(out_dir, doc, tensors):
    """Reload both files and check every referenced tensor is there with the right dtype."""
    st_path = os.path.join(out_dir, "op_parity.safetensors")
    with open(os.path.join(out_dir, "op_parity.json")) as f:
        assert json.load(f) == doc
    with safe_open(st_path, framework="pt") as f:
        keys = set(f.keys())
        used = set()
        for c in doc["cases"]:
            for n, is_int in zip(c["inputs"], c["int_inputs"]):
                assert f.get_tensor(n).dtype == (torch.int64 if is_int else torch.float32), n
                used.add(n)
            out = f.get_tensor(c["output"])
            assert out.dtype == (torch.int64 if c["op"] == "argmax" else torch.float32), c["name"]
            used.add(c["output"])
            if c["grad_output"] is not None:
                assert f.get_tensor(c["grad_output"]).shape == out.shape, c["name"]
                used.add(c["grad_output"])
            for n, gi, inp in zip(c["grads"], c["grad_inputs"], c["inputs"]):
                assert (n is not None) == (gi and c["grad_output"] is not None), c["name"]
                if n is not None:
                    assert f.get_tensor(n).shape == f.get_tensor(inp).shape, n
                    used.add(n)
        assert keys == used, keys ^ used
        for n in keys:
            assert torch.equal(f.get_tensor(n), tensors[n]), n


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="tests/fixtures", help="output folder (default tests/fixtures)")
    a = ap.parse_args()

    torch.manual_seed(0)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float32)

    b = build()
    os.makedirs(a.out, exist_ok=True)
    doc = {"generator": GENERATOR, "torch_version": torch.__version__, "cases": b.cases}
    st_path = os.path.join(a.out, "op_parity.safetensors")
    json_path = os.path.join(a.out, "op_parity.json")
    save_safetensors(b.tensors, st_path, {"generator": GENERATOR, "torch_version": torch.__version__})
    with open(json_path, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    check(a.out, doc, b.tensors)

    counts = {}
    for c in b.cases:
        counts[c["op"]] = counts.get(c["op"], 0) + 1
    print(f"torch {torch.__version__}: {len(b.cases)} cases, {len(counts)} ops, {len(b.tensors)} tensors")
    print(f"{st_path}: {os.path.getsize(st_path)} bytes; {json_path}: {os.path.getsize(json_path)} bytes")
    print(" ".join(f"{op}:{n}" for op, n in counts.items()))


if __name__ == "__main__":
    main()
