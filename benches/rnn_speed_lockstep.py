#!/usr/bin/env python3
"""wgnn against PyTorch on d2l's character language model, round by round: the training speed of
`examples/rnn_speed.rs` and `benches/rnn_speed.py` (the same model, step and data) with their
rounds alternated, so that both see the same state of a shared machine.

On a shared machine the speed of a core drifts by a factor of two over minutes; timing one
framework for a while and then the other compares two different machines. Here both run at
once, each waiting for a `go` before each round of `--steps-per-round` steps, and the driver
alternates them (which one goes first alternates too), pausing between rounds so that the
threads of the one that just ran have stopped spinning. The ratio of each pair of adjacent
rounds compares the two on one state of the machine; the median of those ratios is reported,
with its quartiles.

    cargo build --release --example rnn_speed
    /work/venv-torch/bin/python benches/rnn_speed_lockstep.py --threads 2 --rounds 60

Prints a table (and, with --json FILE, writes the figures): per cell, the median ms/step of each
and the median ratio PyTorch ms / wgnn ms (above 1: wgnn is faster).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def start(cmd):
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
    line = proc.stdout.readline().strip()
    if line != "ready":
        proc.kill()
        sys.exit(f"{cmd[0]} did not start (said {line!r})")
    return proc


def one_round(proc, pause):
    # The other framework's threads spin for a while after their round (libgomp's and
    # rayon's idle spinning) before they sleep: let them, so they do not share this round.
    time.sleep(pause)
    proc.stdin.write("go\n")
    proc.stdin.flush()
    line = proc.stdout.readline().strip()
    try:
        return float(line)
    except ValueError:
        sys.exit(f"a round printed {line!r}")


def stop(proc):
    proc.stdin.write("stop\n")
    proc.stdin.close()
    proc.wait(timeout=60)


def quartiles(v):
    q = statistics.quantiles(v, n=4)
    return q[0], statistics.median(v), q[2]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--cells", default="lstm,gru,rnn")
    p.add_argument("--rounds", type=int, default=60, help="rounds of each, alternated")
    p.add_argument("--steps-per-round", type=int, default=3)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--pause", type=float, default=0.05,
                   help="seconds between rounds, for the idle framework's threads to stop spinning")
    p.add_argument("--wgnn", default=os.path.join(HERE, "..", "target", "release", "examples", "rnn_speed"),
                   help="the built rnn_speed example")
    p.add_argument("--json", help="write the figures to this file")
    args = p.parse_args()
    common = ["--threads", str(args.threads), "--warmup", str(args.warmup),
              "--steps-per-round", str(args.steps_per_round), "--lockstep"]
    rows = {}
    for cell in [c.strip() for c in args.cells.split(",")]:
        ours = start([args.wgnn, "--cells", cell] + common)
        theirs = start([sys.executable, os.path.join(HERE, "rnn_speed.py"), "--cells", cell] + common)
        pairs = []
        for i in range(args.rounds):
            if i % 2 == 0:
                a = one_round(ours, args.pause)
                b = one_round(theirs, args.pause)
            else:
                b = one_round(theirs, args.pause)
                a = one_round(ours, args.pause)
            pairs.append((a, b))
        stop(ours)
        stop(theirs)
        w = [a for a, _ in pairs]
        t = [b for _, b in pairs]
        ratios = [b / a for a, b in pairs]
        rows[cell] = {
            "wgnn_ms": statistics.median(w),
            "pytorch_ms": statistics.median(t),
            "ratio_quartiles": quartiles(ratios),
            "wgnn_ms_min": min(w),
            "pytorch_ms_min": min(t),
        }
        print(f"{cell}: {args.rounds} rounds each", file=sys.stderr)
    tokens = 32 * 35
    print(f"{args.threads} threads, {args.rounds} alternated rounds of {args.steps_per_round} steps per cell")
    print("| cell | wgnn ms/step (median) | PyTorch ms/step (median) | wgnn tokens/s | PyTorch tokens/s "
          "| PyTorch ms / wgnn ms, per pair: median [quartiles] |")
    print("|---|---|---|---|---|---|")
    for cell, r in rows.items():
        lo, med, hi = r["ratio_quartiles"]
        print(f"| {cell} | {r['wgnn_ms']:.2f} | {r['pytorch_ms']:.2f} | {tokens / r['wgnn_ms'] * 1e3:.0f} "
              f"| {tokens / r['pytorch_ms'] * 1e3:.0f} | {med:.2f}× [{lo:.2f}, {hi:.2f}] |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"threads": args.threads, "rounds": args.rounds,
                       "steps_per_round": args.steps_per_round, "cells": rows}, f, indent=1)


if __name__ == "__main__":
    main()
