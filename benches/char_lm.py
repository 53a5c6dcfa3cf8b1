#!/usr/bin/env python3
"""The PyTorch twin of `examples/char_lm.rs`: d2l's character language model (v0.17, ch. 8.6)
on The Time Machine, with the same data, split, partition and number of updates as wgnn.

Model: d2l's `RNNModel` — `nn.RNN` (tanh) / `nn.GRU` / `nn.LSTM` chosen by `--cell`, inputs
one-hot `[T, B, V]`, then `nn.Linear(hidden, vocab)` over the `[T·B, hidden]` outputs; PyTorch's
default initialisation after `torch.manual_seed(--seed)`.

Data, as `wgnn::data::text`: `data/timemachine/timemachine.txt` (vendored, nothing downloads);
per line `re.sub('[^A-Za-z]+', ' ', line).strip().lower()`, character tokens of all lines
concatenated; d2l's `Vocab` (`<unk>` first, then by descending frequency, ties in order of first
occurrence); the first 90 % of the tokens train, the last `len // 10` validate.

Partition: d2l's `seq_data_iter_sequential` (default; `--partition random` for
`seq_data_iter_random`) with the offset (and the random partition's shuffle) drawn as wgnn draws
them, so both sides see the same batches in the same order: epoch `e` (from 0) uses
`SplitMix64(seed ^ ((e + 1) * 0xA24B_AED4_963E_E407 mod 2^64))`; sequential draws
`offset = below(T + 1)`; random draws `offset = below(T)` then Fisher–Yates over the
subsequence starts from the back, `j = below(i + 1)`; `below(n) = (next_u64() * n) >> 64`.

Training (d2l's `train_ch8`): SGD with lr `--lr`, the global gradient norm clipped at 1, mean
cross-entropy over the batch's `T·B` targets, the state detached between consecutive batches
of the sequential partition (re-initialised to zeros for every batch of the random one).
Validation: the validation part through the sequential partition at offset 0, the state carried
from batch to batch, no gradients. Training perplexity is d2l's: exp of the token-weighted
mean loss over the epoch, measured while training.

Prints per epoch the training and validation perplexity and training tokens/s (the training
loop only, clipping and updates included), then d2l's `perplexity X, Y tokens/sec on cpu` (last
epoch) and 50-character greedy predictions for `time traveller` and `traveller` (d2l's
`predict_ch8`). `--out` writes the per-epoch figures as JSON (`epochs[i].updates` counts the
updates since the start, `epoch_updates` those of the epoch).

    /work/venv-torch/bin/python benches/char_lm.py --cell lstm --epochs 2 --out lstm.json
    /work/venv-torch/bin/python benches/char_lm.py --check-rng   # the numbers a Rust test pins
"""
import argparse
import collections
import json
import math
import os
import re
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEXT = os.path.join(ROOT, "data", "timemachine", "timemachine.txt")
MASK64 = (1 << 64) - 1


class SplitMix64:
    """`wgnn::rng::SplitMix64`, bit for bit (Steele, Lea & Flood 2014)."""

    def __init__(self, seed):
        self.state = seed & MASK64

    def next_u64(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK64
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        return z ^ (z >> 31)

    def below(self, n):
        """Uniform in [0, n), Lemire's multiply-shift as `SplitMix64::below`."""
        return (self.next_u64() * n) >> 64


def epoch_rng(seed, epoch):
    """`wgnn::data::text::epoch_rng`."""
    return SplitMix64(seed ^ (((epoch + 1) * 0xA24BAED4963EE407) & MASK64))


def load_corpus(path=TEXT):
    """d2l's `load_corpus_time_machine`: (corpus indices, idx_to_token)."""
    with open(path) as f:
        lines = [re.sub("[^A-Za-z]+", " ", line).strip().lower() for line in f.readlines()]
    tokens = [c for line in lines for c in line]
    counter = collections.Counter(tokens)
    freqs = sorted(counter.items(), key=lambda x: x[1], reverse=True)  # stable: ties keep order
    idx_to_token = ["<unk>"] + [t for t, _ in freqs]
    token_to_idx = {t: i for i, t in enumerate(idx_to_token)}
    return [token_to_idx[t] for t in tokens], idx_to_token


def split(corpus):
    """(train, validation): the last len // 10 tokens validate."""
    n_val = len(corpus) * 10 // 100
    return corpus[: len(corpus) - n_val], corpus[len(corpus) - n_val :]


def sequential_at(corpus, batch_size, num_steps, offset):
    """d2l's `seq_data_iter_sequential` at a given offset: yields (X, Y) int64 `[B, T]`."""
    num_tokens = ((len(corpus) - offset - 1) // batch_size) * batch_size
    xs = torch.tensor(corpus[offset : offset + num_tokens]).reshape(batch_size, -1)
    ys = torch.tensor(corpus[offset + 1 : offset + 1 + num_tokens]).reshape(batch_size, -1)
    num_batches = xs.shape[1] // num_steps
    if num_batches == 0:
        raise SystemExit(f"a corpus of {len(corpus)} tokens is too short for one {batch_size}×{num_steps} batch")
    for i in range(0, num_steps * num_batches, num_steps):
        yield xs[:, i : i + num_steps], ys[:, i : i + num_steps]


def sequential(corpus, batch_size, num_steps, rng):
    offset = rng.below(num_steps + 1)
    return offset, sequential_at(corpus, batch_size, num_steps, offset)


def random_partition(corpus, batch_size, num_steps, rng):
    """d2l's `seq_data_iter_random` with wgnn's draws: (offset, [row starts per batch], batches)."""
    offset = rng.below(num_steps)
    n = (len(corpus) - offset - 1) // num_steps
    starts = [offset + k * num_steps for k in range(n)]
    for i in range(n - 1, 0, -1):
        j = rng.below(i + 1)
        starts[i], starts[j] = starts[j], starts[i]
    rows = [starts[i : i + batch_size] for i in range(0, n // batch_size * batch_size, batch_size)]

    def batches():
        for r in rows:
            yield (torch.tensor([corpus[s : s + num_steps] for s in r]),
                   torch.tensor([corpus[s + 1 : s + 1 + num_steps] for s in r]))

    return offset, rows, batches()


class RNNModel(nn.Module):
    """d2l's `RNNModel`: a recurrent layer over one-hot inputs, then a linear output layer."""

    def __init__(self, rnn_layer, vocab_size):
        super().__init__()
        self.rnn = rnn_layer
        self.vocab_size = vocab_size
        self.num_hiddens = rnn_layer.hidden_size
        self.linear = nn.Linear(self.num_hiddens, vocab_size)

    def forward(self, inputs, state):
        x = F.one_hot(inputs.T.long(), self.vocab_size).to(torch.float32)  # [T, B, V]
        y, state = self.rnn(x, state)
        return self.linear(y.reshape((-1, y.shape[-1]))), state

    def begin_state(self, batch_size):
        shape = (self.rnn.num_layers, batch_size, self.num_hiddens)
        if isinstance(self.rnn, nn.LSTM):
            return (torch.zeros(shape), torch.zeros(shape))
        return torch.zeros(shape)


def detach(state):
    return tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()


def grad_clipping(net, theta):
    """d2l's `grad_clipping`: scale every gradient by theta / global norm when the norm exceeds theta."""
    params = [p for p in net.parameters() if p.requires_grad]
    norm = torch.sqrt(sum(torch.sum(p.grad**2) for p in params))
    if norm > theta:
        for p in params:
            p.grad[:] *= theta / norm


def train_epoch(net, batches, loss, updater, random_iter):
    """d2l's `train_ch8` inner loop: (perplexity, tokens, seconds, updates)."""
    state, total, n, updates = None, 0.0, 0, 0
    start = time.perf_counter()
    for x, y in batches:
        if state is None or random_iter:
            state = net.begin_state(x.shape[0])
        else:
            state = detach(state)
        y = y.T.reshape(-1)
        y_hat, state = net(x, state)
        l = loss(y_hat, y.long()).mean()
        updater.zero_grad()
        l.backward()
        grad_clipping(net, 1)
        updater.step()
        total += float(l.detach()) * y.numel()
        n += y.numel()
        updates += 1
    return math.exp(total / n), n, time.perf_counter() - start, updates


@torch.no_grad()
def evaluate(net, corpus, batch_size, num_steps, loss):
    """Perplexity over `corpus` by the sequential partition at offset 0, the state carried."""
    state, total, n = None, 0.0, 0
    for x, y in sequential_at(corpus, batch_size, num_steps, 0):
        if state is None:
            state = net.begin_state(x.shape[0])
        y = y.T.reshape(-1)
        y_hat, state = net(x, state)
        total += float(loss(y_hat, y.long()).sum())
        n += y.numel()
    return math.exp(total / n)


@torch.no_grad()
def predict(prefix, num_preds, net, idx_to_token):
    """d2l's `predict_ch8`: warm up on the prefix, then greedy argmax for num_preds characters."""
    token_to_idx = {t: i for i, t in enumerate(idx_to_token)}
    state = net.begin_state(1)
    outputs = [token_to_idx.get(prefix[0], 0)]
    get_input = lambda: torch.tensor([outputs[-1]]).reshape((1, 1))
    for y in prefix[1:]:
        _, state = net(get_input(), state)
        outputs.append(token_to_idx.get(y, 0))
    for _ in range(num_preds):
        y, state = net(get_input(), state)
        outputs.append(int(y.argmax(dim=1).reshape(1)))
    return "".join(idx_to_token[i] for i in outputs)


def check_rng():
    """Prints the draws `wgnn::data::text::tests::draws_match_the_python_twin` pins."""
    print("SplitMix64(0).next_u64() =", hex(SplitMix64(0).next_u64()))
    corpus = list(range(1000))
    offsets = [sequential(corpus, 4, 35, epoch_rng(42, e))[0] for e in range(4)]
    print("sequential offsets, seed 42, epochs 0..4, B 4, T 35:", offsets)
    offset, rows, batches = random_partition(corpus, 4, 35, epoch_rng(42, 0))
    x, _ = next(batches)
    print("random, seed 42, epoch 0: offset", offset, "first batch's row starts", rows[0], "x[0,0]", int(x[0, 0]))
    full, _ = load_corpus()
    train, val = split(full)
    print("tokens", len(full), "train", len(train), "validation", len(val))
    offsets = [sequential(train, 32, 35, epoch_rng(0, e))[0] for e in range(4)]
    print("Time Machine train, seed 0, epochs 0..4, B 32, T 35: sequential offsets", offsets)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cell", choices=["rnn", "gru", "lstm"], default="lstm")
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=1)
    ap.add_argument("--steps", type=int, default=35)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1.0)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--partition", choices=["sequential", "random"], default="sequential")
    ap.add_argument("--out", default=None, help="write the per-epoch figures here as JSON")
    ap.add_argument("--check-rng", action="store_true", help="print the draws the Rust tests pin and exit")
    args = ap.parse_args()
    if args.check_rng:
        check_rng()
        return

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    corpus, idx_to_token = load_corpus()
    train, val = split(corpus)
    vocab_size = len(idx_to_token)
    cls = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}[args.cell]
    net = RNNModel(cls(vocab_size, args.hidden, num_layers=args.layers), vocab_size)
    loss = nn.CrossEntropyLoss(reduction="none")
    updater = torch.optim.SGD(net.parameters(), args.lr)
    print(f"{args.cell}: hidden {args.hidden}, layers {args.layers}, vocab {vocab_size}, "
          f"{len(train)} training and {len(val)} validation tokens, batch {args.batch} × {args.steps} steps, "
          f"{args.partition} partition, seed {args.seed}, {torch.get_num_threads()} threads, torch {torch.__version__}")

    epochs, updates_total = [], 0
    for epoch in range(args.epochs):
        rng = epoch_rng(args.seed, epoch)
        if args.partition == "sequential":
            offset, batches = sequential(train, args.batch, args.steps, rng)
        else:
            offset, _, batches = random_partition(train, args.batch, args.steps, rng)
        ppl, tokens, secs, updates = train_epoch(net, batches, loss, updater, args.partition == "random")
        updates_total += updates
        val_ppl = evaluate(net, val, args.batch, args.steps, loss)
        speed = tokens / secs
        epochs.append({"epoch": epoch + 1, "offset": offset, "epoch_updates": updates, "updates": updates_total,
                       "train_perplexity": ppl, "val_perplexity": val_ppl,
                       "tokens_per_sec": speed, "train_seconds": secs})
        print(f"epoch {epoch + 1}/{args.epochs}: offset {offset}, {updates} updates, train perplexity {ppl:.3f}, "
              f"validation perplexity {val_ppl:.3f}, {speed:.1f} tokens/sec", flush=True)

    last = epochs[-1]
    print(f"perplexity {last['train_perplexity']:.1f}, {last['tokens_per_sec']:.1f} tokens/sec on cpu")
    predictions = {p: predict(p, 50, net, idx_to_token) for p in ("time traveller", "traveller")}
    for text in predictions.values():
        print(text)
    if args.out:
        out = {"framework": f"pytorch {torch.__version__}", "cell": args.cell, "hidden": args.hidden,
               "layers": args.layers, "num_steps": args.steps, "batch_size": args.batch, "lr": args.lr,
               "seed": args.seed, "threads": args.threads, "partition": args.partition,
               "vocab_size": vocab_size, "train_tokens": len(train), "val_tokens": len(val),
               "epochs": epochs, "perplexity": last["train_perplexity"],
               "val_perplexity": last["val_perplexity"], "tokens_per_sec": last["tokens_per_sec"],
               "predictions": predictions}
        with open(args.out, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
