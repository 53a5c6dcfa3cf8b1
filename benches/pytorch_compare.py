#!/usr/bin/env python3
"""Trains wgnn's networks in PyTorch on the same CPU cores, for back-to-back throughput
comparisons with wgnn's examples (`benches/cpu_vs_pytorch.py` runs both and prints the table).

--model deepconvnet (default): the book's DeepConvNet as `vgg_like` builds it (conv 16,16 |
pool | 32,32 (pad 2 on the 4th) | pool | 64,64 | pool | 1024→50 → dropout → 50→10 →
dropout), He init, Adam lr 0.001, batch 100, MNIST.
--model lenet / resnet18: d2l's LeNet (sigmoid, avg-pool) and ResNet-18 (at 28 px), as
`zoo --model lenet|resnet18` builds them, Xavier-uniform init, plain SGD with d2l's lr and batch
(LeNet 0.9 / 256, ResNet-18 0.05 / 256), Fashion-MNIST.

Prints training images/s (training only), evaluation images/s over the test set and the test
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


def lenet():
    net = nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.Sigmoid(), nn.AvgPool2d(2, 2),
        nn.Conv2d(6, 16, 5), nn.Sigmoid(), nn.AvgPool2d(2, 2), nn.Flatten(),
        nn.Linear(16 * 5 * 5, 120), nn.Sigmoid(), nn.Linear(120, 84), nn.Sigmoid(), nn.Linear(84, 10),
    )
    return xavier(net)


class Residual(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1, stride=stride)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.conv3 = nn.Conv2d(cin, cout, 1, stride=stride) if stride != 1 or cin != cout else None
        self.bn1, self.bn2 = nn.BatchNorm2d(cout), nn.BatchNorm2d(cout)

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return torch.relu(y + (self.conv3(x) if self.conv3 is not None else x))


def resnet18():
    layers = [nn.Conv2d(1, 64, 7, stride=2, padding=3), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(3, 2, 1)]
    cin = 64
    for i, cout in enumerate([64, 128, 256, 512]):
        stride = 1 if i == 0 else 2
        layers += [Residual(cin, cout, stride), Residual(cout, cout, 1)]
        cin = cout
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, 10)]
    return xavier(nn.Sequential(*layers))


def xavier(net):
    for m in net.modules():  # d2l's init_cnn
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)
    return net


# model: (builder, dataset, optimizer, lr, batch)
MODELS = {
    "deepconvnet": (deep_convnet, "mnist", "adam", 0.001, 100),
    "lenet": (lenet, "fashion-mnist", "sgd", 0.9, 256),
    "resnet18": (resnet18, "fashion-mnist", "sgd", 0.05, 256),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", choices=sorted(MODELS), default="deepconvnet")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=None, help="default: the model's")
    ap.add_argument("--train-limit", type=int, default=None)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    build, dataset, optim, lr, batch = MODELS[args.model]
    args.batch_size = args.batch_size or batch
    d = os.path.join(ROOT, "data", dataset)
    xtr, ytr = idx(os.path.join(d, "train-images-idx3-ubyte.gz")), idx(os.path.join(d, "train-labels-idx1-ubyte.gz"))
    xte, yte = idx(os.path.join(d, "t10k-images-idx3-ubyte.gz")), idx(os.path.join(d, "t10k-labels-idx1-ubyte.gz"))
    if args.train_limit:
        xtr, ytr = xtr[: args.train_limit], ytr[: args.train_limit]
    net = build()
    if optim == "adam":
        opt = torch.optim.Adam(net.parameters(), lr=lr, betas=(0.9, 0.999), eps=1e-7)
    else:
        opt = torch.optim.SGD(net.parameters(), lr=lr)
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
        t0 = time.perf_counter()
        with torch.no_grad():  # in batches of 200, as wgnn's trainer evaluates
            correct = sum((net(xte[i : i + 200]).argmax(1) == yte[i : i + 200]).sum().item()
                          for i in range(0, len(xte), 200))
        eval_secs = time.perf_counter() - t0
        e = {"epoch": epoch + 1, "train_loss": total / ((len(xtr) + args.batch_size - 1) // args.batch_size),
             "test_accuracy": correct / len(xte), "images_per_sec": len(xtr) / secs, "seconds": secs,
             "eval_images_per_sec": len(xte) / eval_secs}
        epochs.append(e)
        print(f"pytorch {torch.__version__} {args.model} ({args.threads} threads): epoch {e['epoch']}: "
              f"train loss {e['train_loss']:.4f}, test acc {100 * e['test_accuracy']:.2f}%, "
              f"{e['images_per_sec']:.0f} img/s training, {e['eval_images_per_sec']:.0f} img/s evaluating")
    out = {"framework": f"pytorch {torch.__version__}", "model": args.model, "threads": args.threads,
           "epochs": epochs, "images_per_sec": sum(e["images_per_sec"] for e in epochs) / len(epochs),
           "eval_images_per_sec": sum(e["eval_images_per_sec"] for e in epochs) / len(epochs)}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
