#!/usr/bin/env python3
"""wgnn's CPU backend against PyTorch on the same cores, back to back, for every network both
sides know: training images/s (one epoch) and evaluation images/s (the 10,000 test images).

For each model it alternates PyTorch, wgnn, PyTorch, wgnn, ... (`--rounds` pairs), so both see
the same machine state, and prints one markdown table with every run and the ratios of the
means. wgnn runs its own examples (`vgg_like` for the book's DeepConvNet, `zoo` for d2l's LeNet
and ResNet-18 at 28 px) with RAYON_NUM_THREADS set to `--threads`; PyTorch runs
`benches/pytorch_compare.py` with torch.set_num_threads(`--threads`).

    cargo build --release --example vgg_like --example zoo
    python3 benches/cpu_vs_pytorch.py --python .venv-torch/bin/python --threads 2

The PyTorch interpreter comes from --python, else $TORCH_PYTHON, else python3.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# name: (wgnn example and arguments, training images per run (None: all 60,000))
MODELS = {
    "deepconvnet": (["vgg_like"], None),
    "lenet": (["zoo", "--model", "lenet", "--dataset", "fashion-mnist"], None),
    "resnet18": (["zoo", "--model", "resnet18", "--resize", "28", "--dataset", "fashion-mnist"], 10000),
}


def run(cmd, env=None):
    """Runs `cmd`, echoing its last line; exits with its output on failure."""
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"failed ({p.returncode}): {' '.join(cmd)}\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}")
    lines = [l for l in p.stdout.splitlines() if l.strip()]
    print("   ", lines[-1] if lines else "(no output)", flush=True)


def torch_run(py, model, threads, limit):
    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        cmd = [py, "benches/pytorch_compare.py", "--model", model, "--threads", str(threads), "--json", f.name]
        if limit:
            cmd += ["--train-limit", str(limit)]
        run(cmd)
        out = json.load(open(f.name))
    return out["images_per_sec"], out["eval_images_per_sec"], out["framework"], out["epochs"][-1]["test_accuracy"]


def wgnn_run(example, threads, limit):
    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        exe = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")),
                           "release", "examples", example[0])
        if not os.path.exists(exe):
            sys.exit(f"{exe} is missing: cargo build --release --example {example[0]}")
        cmd = [exe] + example[1:] + ["--device", "cpu", "--epochs", "1", "--no-progress", "--metrics-out", f.name]
        if limit:
            cmd += ["--train-limit", str(limit)]
        run(cmd, env=dict(os.environ, RAYON_NUM_THREADS=str(threads)))
        out = json.load(open(f.name))
    last = out["epochs"][-1]
    return out["images_per_sec"], out["test_examples"] / last["eval_seconds"], out["test_accuracy"]


def mean(v):
    return sum(v) / len(v)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--python", default=os.environ.get("TORCH_PYTHON", "python3"),
                    help="the Python with torch installed")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2, help="PyTorch/wgnn pairs per model")
    ap.add_argument("--models", default=",".join(MODELS), help="comma-separated: " + ", ".join(MODELS))
    ap.add_argument("--train-limit", type=int, default=None,
                    help="training images per run for every model (default: 60,000; ResNet-18 10,000)")
    ap.add_argument("--json", default=None, help="also write the figures here")
    args = ap.parse_args()
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in models if m not in MODELS]
    if unknown or args.rounds < 1 or args.threads < 1:
        sys.exit(f"unknown model(s) {unknown} (known: {', '.join(MODELS)}), or --rounds/--threads below 1")
    rows, version = [], "?"
    for m in models:
        example, limit = MODELS[m]
        limit = args.train_limit or limit
        t_train, t_eval, w_train, w_eval, t_acc, w_acc = [], [], [], [], [], []
        print(f"{m}: {args.rounds} rounds of PyTorch then wgnn, {args.threads} threads, "
              f"{limit or 60000} training images per run", flush=True)
        for _ in range(args.rounds):
            tr, ev, version, acc = torch_run(args.python, m, args.threads, limit)
            t_train.append(tr)
            t_eval.append(ev)
            t_acc.append(acc)
            tr, ev, acc = wgnn_run(example, args.threads, limit)
            w_train.append(tr)
            w_eval.append(ev)
            w_acc.append(acc)
        rows.append({"model": m, "train_images": limit or 60000,
                     "pytorch_train": t_train, "wgnn_train": w_train,
                     "pytorch_eval": t_eval, "wgnn_eval": w_eval,
                     "pytorch_test_accuracy": t_acc, "wgnn_test_accuracy": w_acc,
                     "train_ratio": mean(w_train) / mean(t_train), "eval_ratio": mean(w_eval) / mean(t_eval)})
    fmt = lambda v: " / ".join(f"{x:,.0f}" for x in v)
    print(f"\n{version} vs wgnn, CPU, {args.threads} threads, runs alternating PyTorch/wgnn (images/s):\n")
    print("| model | training: PyTorch | training: wgnn | ratio | evaluation: PyTorch | evaluation: wgnn | ratio "
          "| test acc. after the run: PyTorch / wgnn |")
    print("|---|---|---|---|---|---|---|---|")
    pct = lambda v: " / ".join(f"{100 * x:.2f}" for x in v)
    for r in rows:
        print(f"| {r['model']} | {fmt(r['pytorch_train'])} | {fmt(r['wgnn_train'])} | {r['train_ratio']:.2f}× "
              f"| {fmt(r['pytorch_eval'])} | {fmt(r['wgnn_eval'])} | {r['eval_ratio']:.2f}× "
              f"| {pct(r['pytorch_test_accuracy'])} / {pct(r['wgnn_test_accuracy'])} % |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"pytorch": version, "threads": args.threads, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
