#!/usr/bin/env python3
"""PyTorch's DCGAN example on MNIST or Fashion-MNIST, sized for 28×28 images (or 32×32 with
`--resize 32`): the PyTorch twin of `examples/dcgan.rs`, so that both can be timed and scored by
one yardstick.

The nets are PyTorch's example's at these sizes (every convolution without bias): a generator of
transposed convolutions with BatchNorm, ReLU and a tanh output, a discriminator of strided
convolutions with LeakyReLU 0.2 and BatchNorm (none on its first layer) ending in one logit
(binary cross-entropy with logits: the example's Sigmoid + BCELoss without its overflow), DCGAN's
`weights_init`, Adam lr 2e-4 with β1 0.5 for each net, noise of 100, batch 64. The training loop
is the example's: D on a real batch (label 1) and on `G(z).detach()` (label 0), then G through the
updated D (label 1). Prints the example's line — `Loss_D`, `Loss_G`, `D(x)`, `D(G(z))` before and
after the D step — every `--log-every` iterations, in dcgan.rs's format. After every epoch: a PNG
grid (8 × 8, enlarged 2×) of G's samples from one fixed noise batch, `samples_epoch_K.png`, and
the epoch means with images/s in `metrics.json` (dcgan.rs's keys, plus `threads`), in `--out-dir`.
After the last epoch, 10,000 samples from fresh noise (G's raw tanh output, [10000, 1, S, S]
float32) go to `--samples` as the safetensors tensor `samples`, for wgnn's scorer.

`--sample-mode train` (the default, as the example's grids and dcgan.rs's) samples with BatchNorm
on the batch's statistics; `eval` with the running statistics (dcgan.rs's `--sample-mode eval`).
Score the samples with `cargo run --release --example dcgan -- --score-samples FILE`.

    /work/venv-torch/bin/python benches/dcgan.py --epochs 5 --out-dir runs/dcgan_torch
    /work/venv-torch/bin/python benches/dcgan.py --dataset fashion-mnist --resize 32 --limit 10000
    /work/venv-torch/bin/python benches/dcgan.py --threads 2 --epochs 1 --max-iters 50
"""
import argparse
import gzip
import json
import os
import struct
import sys
import time
import zlib

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.numpy import save_file

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATASETS = ("mnist", "fashion-mnist")


def load_images(dataset, limit):
    """The first `limit` (None: all) training images of `data/<dataset>/` (idx, gzip) as uint8
    `[n, rows, cols]`."""
    path = os.path.join(REPO, "data", dataset, "train-images-idx3-ubyte.gz")
    if not os.path.isfile(path):
        sys.exit(f"--dataset {dataset}: no training images at {path}")
    with gzip.open(path, "rb") as f:
        head = f.read(16)
        if len(head) < 16:
            sys.exit(f"--dataset {dataset}: {path} is truncated")
        magic, n, rows, cols = struct.unpack(">IIII", head)
        if magic != 0x00000803:
            sys.exit(f"--dataset {dataset}: {path} is not an idx3 image file (magic {magic:#x})")
        if limit is not None:
            n = min(n, limit)
        raw = f.read(n * rows * cols)
    if len(raw) != n * rows * cols:
        sys.exit(f"--dataset {dataset}: {path} is truncated")
    return np.frombuffer(raw, dtype=np.uint8).reshape(n, rows, cols)


def to_tensor(images, size):
    """uint8 images `[n, h, w]` as float32 `[n, 1, size, size]` in [-1, 1] (p / 127.5 - 1),
    resized bilinearly (align_corners=False, as wgnn's `resize_bilinear`) when `size` is not h."""
    x = torch.from_numpy(images.astype(np.float32) / 127.5 - 1.0).unsqueeze(1)
    if size != x.shape[-1]:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return x.contiguous()


def generator(size, nz, ngf, nc=1):
    """PyTorch's DCGAN generator for `size`×`size` images from noise `[N, nz, 1, 1]`: 4×4, 8×8,
    16×16, 32×32 (size 32) or 7×7, 14×14, 28×28 (size 28); no convolution biases."""
    if size == 32:
        return nn.Sequential(
            nn.ConvTranspose2d(nz, ngf * 4, 4, 1, 0, bias=False),
            nn.BatchNorm2d(ngf * 4),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ngf * 2),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ngf),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False),
            nn.Tanh(),
        )
    return nn.Sequential(
        nn.ConvTranspose2d(nz, ngf * 2, 7, 1, 0, bias=False),
        nn.BatchNorm2d(ngf * 2),
        nn.ReLU(True),
        nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False),
        nn.BatchNorm2d(ngf),
        nn.ReLU(True),
        nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False),
        nn.Tanh(),
    )


def discriminator(size, ndf, nc=1):
    """PyTorch's DCGAN discriminator for `size`×`size` images: one logit per image
    (`[N, 1, 1, 1]`; the example's final Sigmoid is in the loss); no convolution biases."""
    if size == 32:
        return nn.Sequential(
            nn.Conv2d(nc, ndf, 4, 2, 1, bias=False),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ndf * 2),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf * 2, ndf * 4, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ndf * 4),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf * 4, 1, 4, 1, 0, bias=False),
        )
    return nn.Sequential(
        nn.Conv2d(nc, ndf, 4, 2, 1, bias=False),
        nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False),
        nn.BatchNorm2d(ndf * 2),
        nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(ndf * 2, 1, 7, 1, 0, bias=False),
    )


def weights_init(m):
    """DCGAN's `weights_init` (PyTorch's example): convolution weights from N(0, 0.02),
    BatchNorm weights from N(1, 0.02) and biases 0."""
    classname = m.__class__.__name__
    if classname.find("Conv") != -1:
        nn.init.normal_(m.weight, 0.0, 0.02)
    elif classname.find("BatchNorm") != -1:
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


def sample(g, noise, mode):
    """G's output for `noise` without gradients, with G in `mode` (train: BatchNorm on the
    batch's statistics; eval: on the running ones); G is left in train mode."""
    g.train(mode == "train")
    with torch.no_grad():
        out = g(noise)
    g.train()
    return out


def write_png_gray(path, pixels):
    """An 8-bit grayscale PNG of `pixels` (uint8 `[h, w]`), written with zlib and struct."""
    h, w = pixels.shape

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)

    # Each row is preceded by its filter type (0: none).
    raw = np.concatenate([np.zeros((h, 1), np.uint8), pixels], axis=1).tobytes()
    png = (b"\x89PNG\r\n\x1a\n"
           + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(raw, 9))
           + chunk(b"IEND", b""))
    with open(path, "wb") as f:
        f.write(png)


def save_grid(images, path, cols=8, scale=2, pad=2):
    """Images `[n, 1, h, w]` in [-1, 1] as a PNG grid, `cols` to a row, each `(x + 1) / 2`
    clipped to [0, 1], enlarged `scale`× and `pad` black pixels apart (as torchvision's
    `make_grid`)."""
    x = ((images[:, 0].cpu().numpy() + 1.0) / 2.0).clip(0.0, 1.0)
    x = np.round(x * 255.0).astype(np.uint8)
    x = x.repeat(scale, axis=1).repeat(scale, axis=2)
    n, h, w = x.shape
    rows = (n + cols - 1) // cols
    grid = np.zeros((pad + rows * (h + pad), pad + cols * (w + pad)), np.uint8)
    for i in range(n):
        top, left = pad + (i // cols) * (h + pad), pad + (i % cols) * (w + pad)
        grid[top:top + h, left:left + w] = x[i]
    write_png_gray(path, grid)


def write_metrics(args, epochs):
    """`metrics.json` in the output directory with dcgan.rs's keys (and `threads`)."""
    doc = {
        "dataset": args.dataset,
        "size": args.resize,
        "device": "pytorch-cpu",
        "batch_size": args.batch_size,
        "seed": args.seed,
        "threads": torch.get_num_threads(),
        "epochs": epochs,
    }
    with open(os.path.join(args.out_dir, "metrics.json"), "w") as f:
        f.write(json.dumps(doc) + "\n")


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="mnist", help="mnist or fashion-mnist (the vendored copies under data/)")
    p.add_argument("--resize", type=int, default=28, help="image size: 28 (as stored) or 32 (resized bilinearly)")
    p.add_argument("--epochs", type=int, default=5, help="passes over the training images")
    p.add_argument("--batch-size", type=int, default=64, help="images per batch (PyTorch's example: 64)")
    p.add_argument("--limit", type=int, help="train on the first N training images only (quick runs)")
    p.add_argument("--lr", type=float, default=2e-4, help="Adam's learning rate for both nets")
    p.add_argument("--beta1", type=float, default=0.5, help="Adam's beta1")
    p.add_argument("--nz", type=int, default=100, help="noise size")
    p.add_argument("--ngf", type=int, default=64, help="generator width (feature maps before its last layer)")
    p.add_argument("--ndf", type=int, default=64, help="discriminator width (feature maps of its first layer)")
    p.add_argument("--seed", type=int, default=0, help="seed of the weights, the noise and the order")
    p.add_argument("--threads", type=int, help="torch.set_num_threads (default: PyTorch's own)")
    p.add_argument("--out-dir", default="runs/dcgan_torch",
                   help="where the grids (samples_epoch_K.png), metrics.json and the samples go")
    p.add_argument("--log-every", type=int, default=100, help="print the losses every this many iterations")
    p.add_argument("--sample-mode", choices=["train", "eval"], default="train",
                   help="G's mode for the grids and the samples: train (batch statistics, as "
                        "PyTorch's example) or eval (running statistics)")
    p.add_argument("--samples", help="where the 10,000 final samples go (default <out-dir>/samples.safetensors)")
    p.add_argument("--max-iters", type=int, help="stop each epoch after this many iterations (quick runs)")
    args = p.parse_args()
    if args.dataset not in DATASETS:
        p.error(f"--dataset {args.dataset!r}: mnist or fashion-mnist")
    if args.resize not in (28, 32):
        p.error(f"--resize {args.resize}: 28 or 32")
    for flag in ("epochs", "batch_size", "nz", "ngf", "ndf", "log_every", "threads", "max_iters"):
        v = getattr(args, flag)
        if v is not None and v < 1:
            p.error(f"--{flag.replace('_', '-')} {v}: must be ≥ 1")
    if args.limit is not None and args.limit < args.batch_size:
        p.error(f"--limit {args.limit}: fewer images than one batch of {args.batch_size}")
    if os.path.exists(args.out_dir) and not os.path.isdir(args.out_dir):
        p.error(f"--out-dir {args.out_dir}: exists and is not a directory")
    if args.samples is None:
        args.samples = os.path.join(args.out_dir, "samples.safetensors")
    return args


def main():
    args = parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    data = to_tensor(load_images(args.dataset, args.limit), args.resize)
    os.makedirs(args.out_dir, exist_ok=True)
    if len(data) < args.batch_size:
        sys.exit(f"--batch-size {args.batch_size}: {len(data)} images make no full batch")
    size, nz = args.resize, args.nz
    net_g = generator(size, nz, args.ngf)
    net_d = discriminator(size, args.ndf)
    net_g.apply(weights_init)
    net_d.apply(weights_init)
    opt_g = torch.optim.Adam(net_g.parameters(), lr=args.lr, betas=(args.beta1, 0.999))
    opt_d = torch.optim.Adam(net_d.parameters(), lr=args.lr, betas=(args.beta1, 0.999))
    fixed = torch.randn(64, nz, 1, 1)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(data), batch_size=args.batch_size, shuffle=True,
        drop_last=True, generator=torch.Generator().manual_seed(args.seed))
    criterion = nn.BCEWithLogitsLoss()
    batches = len(loader)
    last = batches if args.max_iters is None else min(batches, args.max_iters)
    count = lambda net: sum(p.numel() for p in net.parameters())
    print(f"DCGAN on pytorch-cpu ({torch.get_num_threads()} threads, PyTorch {torch.__version__}): "
          f"{len(data)} {size}×{size} images ({batches} batches of {args.batch_size}), "
          f"G {count(net_g)} parameters, D {count(net_d)}")
    epochs = []
    for epoch in range(args.epochs):
        start = time.perf_counter()
        sums = [0.0] * 5
        iters = 0
        for i, (real,) in enumerate(loader):
            if i == last:
                break
            b = real.shape[0]
            ones, zeros = torch.ones(b), torch.zeros(b)
            # (1) D: maximise log D(x) + log(1 − D(G(z))).
            net_d.zero_grad()
            out_real = net_d(real).view(-1)
            err_d_real = criterion(out_real, ones)
            z = torch.randn(b, nz, 1, 1)
            fake = net_g(z)
            out_fake = net_d(fake.detach()).view(-1)
            err_d_fake = criterion(out_fake, zeros)
            err_d = err_d_real + err_d_fake
            err_d.backward()
            opt_d.step()
            # (2) G: maximise log D(G(z)) through the updated D.
            net_g.zero_grad()
            out = net_d(fake).view(-1)
            err_g = criterion(out, ones)
            err_g.backward()
            opt_g.step()
            row = [err_d.item(), err_g.item(), torch.sigmoid(out_real).mean().item(),
                   torch.sigmoid(out_fake).mean().item(), torch.sigmoid(out).mean().item()]
            sums = [s + v for s, v in zip(sums, row)]
            iters += 1
            if (i + 1) % args.log_every == 0 or i + 1 == last:
                print(f"[{epoch + 1}/{args.epochs}][{i + 1}/{batches}] Loss_D: {row[0]:.4f} "
                      f"Loss_G: {row[1]:.4f} D(x): {row[2]:.4f} D(G(z)): {row[3]:.4f} / {row[4]:.4f}",
                      flush=True)
        secs = time.perf_counter() - start
        fig = {"epoch": epoch + 1}
        for k, name in enumerate(("loss_d", "loss_g", "d_x", "d_g_z1", "d_g_z2")):
            fig[name] = round(sums[k] / iters, 5)
        fig["images_per_sec"] = round(iters * args.batch_size / secs, 1)
        grid = os.path.join(args.out_dir, f"samples_epoch_{epoch + 1}.png")
        save_grid(sample(net_g, fixed, args.sample_mode), grid)
        print(f"epoch {epoch + 1}/{args.epochs}: Loss_D {fig['loss_d']:.4f}, Loss_G {fig['loss_g']:.4f}, "
              f"D(x) {fig['d_x']:.4f}, D(G(z)) {fig['d_g_z1']:.4f} / {fig['d_g_z2']:.4f}, "
              f"{fig['images_per_sec']:.0f} images/s; samples: {grid}", flush=True)
        epochs.append(fig)
        write_metrics(args, epochs)
    # 10,000 samples from fresh noise (the global generator, after training) for the scorer.
    parts = [sample(net_g, torch.randn(500, nz, 1, 1), args.sample_mode) for _ in range(20)]
    samples = np.ascontiguousarray(torch.cat(parts).numpy(), dtype=np.float32)
    parent = os.path.dirname(os.path.abspath(args.samples))
    os.makedirs(parent, exist_ok=True)
    save_file({"samples": samples}, args.samples)
    print(f"{len(samples)} samples ({args.sample_mode} mode, shape {list(samples.shape)}): {args.samples}")


if __name__ == "__main__":
    main()
