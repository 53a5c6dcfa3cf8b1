#!/usr/bin/env python3
"""Trains the book's DeepConvNet in PyTorch on the same 2 CPU cores, for the back-to-back
throughput comparison with `cargo run --release --example vgg_like -- --device cpu`.

Same net (conv 16,16 | pool | 32,32 (pad 2 on the 4th) | pool | 64,64 | pool | 1024→50 →
dropout → 50→10 → dropout), same data (the vendored MNIST), Adam lr 0.001, batch 100,
shuffled epochs. Prints training images/s (training only, evaluation excluded) and the test
accuracy, and writes JSON with --json.

    python3 -m venv .venv-torch && .venv-torch/bin/pip install torch
    .venv-torch/bin/python benches/pytorch_compare.py --epochs 1 --threads 2
"""
import argparse
import gzip
import json
import os
import struct
import time

import torch
import torch.nn as nn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic, n = struct.unpack(">II", data[:8])
    if magic == 0x803:
        rows, cols = struct.unpack(">II", data[8:16])
        t = torch.frombuffer(bytearray(data[16:]), dtype=torch.uint8)
        return t.view(n, 1, rows, cols).float() / 255.0
    return torch.frombuffer(bytearray(data[8:]), dtype=torch.uint8).long()


def deep_convnet():
    def conv(cin, cout, pad=1):
        return [nn.Conv2d(cin, cout, 3, padding=pad), nn.ReLU()]

    net = nn.Sequential(
        *conv(1, 16), *conv(16, 16), nn.MaxPool2d(2),
        *conv(16, 32), *conv(32, 32, pad=2), nn.MaxPool2d(2),
        *conv(32, 64), *conv(64, 64), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(1024, 50), nn.ReLU(), nn.Dropout(0.5),
        nn.Linear(50, 10), nn.Dropout(0.5),
    )
    for m in net.modules():  # He init, zero biases, as the book
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            nn.init.zeros_(m.bias)
    return net


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--train-limit", type=int, default=None)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    d = os.path.join(ROOT, "data", "mnist")
    xtr, ytr = idx(os.path.join(d, "train-images-idx3-ubyte.gz")), idx(os.path.join(d, "train-labels-idx1-ubyte.gz"))
    xte, yte = idx(os.path.join(d, "t10k-images-idx3-ubyte.gz")), idx(os.path.join(d, "t10k-labels-idx1-ubyte.gz"))
    if args.train_limit:
        xtr, ytr = xtr[: args.train_limit], ytr[: args.train_limit]
    net = deep_convnet()
    opt = torch.optim.Adam(net.parameters(), lr=0.001, betas=(0.9, 0.999), eps=1e-7)
    loss_fn = nn.CrossEntropyLoss()
    epochs = []
    for epoch in range(args.epochs):
        net.train()
        perm = torch.randperm(len(xtr))
        t0 = time.perf_counter()
        total = 0.0
        for i in range(0, len(xtr), args.batch_size):
            idxs = perm[i : i + args.batch_size]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(net(xtr[idxs]), ytr[idxs])
            loss.backward()
            opt.step()
            total += loss.item()
        secs = time.perf_counter() - t0
        net.eval()
        with torch.no_grad():
            correct = sum((net(xte[i : i + 500]).argmax(1) == yte[i : i + 500]).sum().item() for i in range(0, len(xte), 500))
        e = {"epoch": epoch + 1, "train_loss": total / ((len(xtr) + args.batch_size - 1) // args.batch_size),
             "test_accuracy": correct / len(xte), "images_per_sec": len(xtr) / secs, "seconds": secs}
        epochs.append(e)
        print(f"pytorch {torch.__version__} ({args.threads} threads): epoch {e['epoch']}: train loss {e['train_loss']:.4f}, "
              f"test acc {100 * e['test_accuracy']:.2f}%, {e['images_per_sec']:.0f} img/s, {secs:.1f} s")
    out = {"framework": f"pytorch {torch.__version__}", "threads": args.threads, "epochs": epochs,
           "images_per_sec": sum(e["images_per_sec"] for e in epochs) / len(epochs)}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
