#!/usr/bin/env python3
"""The PyTorch twin of `examples/rnn_speed.rs`: training speed of d2l's character language model
in milliseconds per training step and tokens per second, for nn.LSTM, nn.GRU and nn.RNN (tanh).

Model and step as d2l's `RNNModel` / `train_ch8` (and `benches/char_lm.py`): one-hot inputs
`[T, B, V]` (V = 28) → the recurrent layer (256 units) → `nn.Linear(hidden, V)` over the
`[T·B, hidden]` outputs; mean cross-entropy, `backward`, `clip_grad_norm_(…, 1)`, SGD lr 1, the
state detached between batches. Fixed pseudo-random token ids (speed does not depend on the
text). Each cell: `--warmup` untimed steps, then `--rounds` rounds of `--steps-per-round` steps;
the `--quantile` round is reported (default the median), on the wall clock or (`--clock cpu`)
as the process's CPU time. With `--lockstep`, benches/rnn_speed_lockstep.py alternates its rounds
with the Rust example's, round by round.

    /work/venv-torch/bin/python benches/rnn_speed.py --threads 2
    /work/venv-torch/bin/python benches/rnn_speed.py --threads 2 --json
"""
import argparse
import json
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

VOCAB = 28


def time_cell(name, args):
    torch.manual_seed(0)
    layer = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}[name](VOCAB, args.hidden)
    head = nn.Linear(args.hidden, VOCAB)
    params = list(layer.parameters()) + list(head.parameters())
    opt = torch.optim.SGD(params, lr=1.0)
    gen = torch.Generator().manual_seed(7)
    t, b = args.steps, args.batch
    x = torch.randint(0, VOCAB, (t, b), generator=gen)
    y = torch.randint(0, VOCAB, (t * b,), generator=gen)
    state = None

    def step():
        nonlocal state
        if state is None:
            zeros = torch.zeros(1, b, args.hidden)
            state = (zeros, zeros.clone()) if name == "lstm" else zeros
        onehot = F.one_hot(x, VOCAB).to(torch.float32)
        out, new = layer(onehot, state)
        logits = head(out.reshape(-1, args.hidden))
        loss = F.cross_entropy(logits, y)
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        state = tuple(s.detach() for s in new) if name == "lstm" else new.detach()

    for _ in range(args.warmup):
        step()
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    if args.lockstep:
        # Driven by benches/rnn_speed_lockstep.py: one round per line read, its ms/step out.
        print("ready", flush=True)
        for line in sys.stdin:
            if line.strip() != "go":
                break
            start = clock()
            for _ in range(args.steps_per_round):
                step()
            print(f"{(clock() - start) * 1e3 / args.steps_per_round:.4f}", flush=True)
        return None
    rounds = []
    for _ in range(max(args.rounds, 1)):
        start = clock()
        for _ in range(args.steps_per_round):
            step()
        rounds.append((clock() - start) * 1e3 / args.steps_per_round)
    rounds.sort()
    return rounds[round(min(max(args.quantile, 0.0), 1.0) * (len(rounds) - 1))]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--cells", default="lstm,gru,rnn")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps-per-round", type=int, default=10)
    p.add_argument("--quantile", type=float, default=0.5,
                   help="which round to report (0.5 the median; a low one is steadier on a shared machine)")
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=35)
    p.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                   help="wall: elapsed time; cpu: the process's CPU time (steadier for one thread on a shared machine)")
    p.add_argument("--json", action="store_true", help='print {"lstm": ms_per_step, ...} only')
    p.add_argument("--lockstep", action="store_true",
                   help="one cell: print 'ready' after the warm-up, then time one round per 'go' read "
                        "from stdin (benches/rnn_speed_lockstep.py drives it and the Rust example)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.lockstep:
        time_cell(args.cells.strip(), args)
        return
    rows = [(c.strip(), time_cell(c.strip(), args)) for c in args.cells.split(",")]
    if args.json:
        print(json.dumps({n: round(ms, 3) for n, ms in rows}))
        return
    tokens = args.batch * args.steps
    print(f"PyTorch {torch.__version__}, {torch.get_num_threads()} threads; batch {args.batch} × "
          f"{args.steps} steps, hidden {args.hidden}, vocab {VOCAB}")
    print("| cell | ms/step | tokens/s |")
    print("|---|---|---|")
    for n, ms in rows:
        print(f"| {n} | {ms:.2f} | {tokens / ms * 1e3:.0f} |")


if __name__ == "__main__":
    main()
