//! Training speed of d2l's character language model (ch. 9: one-hot tokens → an RNN, GRU or
//! LSTM of 256 units → a linear head to the 28-token vocabulary; batch 32 × 35 steps, mean
//! cross-entropy, the global gradient norm clipped at 1, SGD lr 1, the state detached between
//! batches) in milliseconds per training step and tokens per second, per cell. The tokens are
//! fixed pseudo-random ids (speed does not depend on the text). `benches/rnn_speed.py` is the
//! PyTorch twin: run the two back to back, alternating, and compare the ratio within one sitting
//! (the machine may be shared); `benches/rnn_speed_lockstep.py` does that round by round.
//!
//! ```text
//! cargo run --release --example rnn_speed -- --threads 2
//! /work/venv-torch/bin/python benches/rnn_speed.py --threads 2
//! ```

use clap::Parser;
use std::time::Instant;
use wgnn::models::RnnLm;
use wgnn::nn::{ModuleExt, RnnCell, RnnState, cross_entropy};
use wgnn::optim::{Optimizer, clip_grad_norm};
use wgnn::{Device, Error, Result, Tensor};

/// Milliseconds per training step of d2l's character LM, per recurrent cell.
#[derive(Parser)]
#[command(about)]
struct Args {
    /// Device: cpu, gpu, gpu:N or auto.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Rayon threads on the CPU (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Cells to time, comma-separated: lstm, gru, rnn.
    #[arg(long, default_value = "lstm,gru,rnn")]
    cells: String,
    /// Untimed steps before timing, per cell.
    #[arg(long, default_value_t = 5)]
    warmup: usize,
    /// Timed rounds per cell.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Which round to report, as a quantile of the sorted rounds: 0.5 the median; on a shared
    /// machine a low one (0.1, many short rounds) is steadier.
    #[arg(long, default_value_t = 0.5)]
    quantile: f64,
    /// Training steps per round.
    #[arg(long, default_value_t = 10)]
    steps_per_round: usize,
    /// Hidden units.
    #[arg(long, default_value_t = 256)]
    hidden: usize,
    /// Sequences per batch.
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// Time steps per batch.
    #[arg(long, default_value_t = 35)]
    steps: usize,
    /// What a round measures: `wall` (elapsed time) or `cpu` (the CPU time of every thread of
    /// the process, from /proc, Linux only): on a shared machine the CPU time of a one-thread
    /// run is the steadier figure of the work done.
    #[arg(long, default_value = "wall")]
    clock: String,
    /// Print one JSON object (`{"lstm": ms_per_step, ...}`) instead of the table.
    #[arg(long)]
    json: bool,
    /// One cell, driven by `benches/rnn_speed_lockstep.py`: print `ready` after the warm-up,
    /// then time one round per `go` line read from stdin and print its ms/step, so that the
    /// driver can alternate rounds with the PyTorch twin's.
    #[arg(long)]
    lockstep: bool,
}

/// d2l's vocabulary size for The Time Machine's characters.
const VOCAB: usize = 28;

/// The origin of the wall clock's readings.
static EPOCH: std::sync::LazyLock<Instant> = std::sync::LazyLock::new(Instant::now);

/// The CPU time of every thread of this process so far, in seconds: the sum of the first
/// field (nanoseconds on the CPU) of `/proc/self/task/*/schedstat`.
fn process_cpu_seconds() -> Result<f64> {
    let io = |e: std::io::Error| Error::invalid("--clock cpu", format!("reading /proc: {e}"));
    let mut ns = 0u64;
    for task in std::fs::read_dir("/proc/self/task").map_err(io)? {
        let path = task.map_err(io)?.path().join("schedstat");
        // A thread may end between listing and reading: it counts no more.
        let Ok(text) = std::fs::read_to_string(path) else {
            continue;
        };
        ns += text
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
    }
    Ok(ns as f64 * 1e-9)
}

fn main() -> Result<()> {
    let args = Args::parse();
    if let Some(t) = args.threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .build_global()
            .map_err(|e| Error::invalid("--threads", e.to_string()))?;
    }
    let device = Device::from_spec(&args.device)?;
    if args.lockstep {
        return time_cell(cell(&args.cells)?, &args, &device).map(drop);
    }
    let mut rows = Vec::new();
    for name in args.cells.split(',') {
        rows.push((
            name.trim().to_string(),
            time_cell(cell(name)?, &args, &device)?,
        ));
    }
    let tokens = (args.batch * args.steps) as f64;
    if args.json {
        let fields: Vec<String> = rows
            .iter()
            .map(|(n, ms)| format!("\"{n}\": {ms:.3}"))
            .collect();
        println!("{{{}}}", fields.join(", "));
        return Ok(());
    }
    println!(
        "wgnn on {device}, {} rayon threads; batch {} × {} steps, hidden {}, vocab {VOCAB}",
        rayon::current_num_threads(),
        args.batch,
        args.steps,
        args.hidden
    );
    println!("| cell | ms/step | tokens/s |");
    println!("|---|---|---|");
    for (name, ms) in rows {
        println!("| {name} | {ms:.2} | {:.0} |", tokens / ms * 1e3);
    }
    Ok(())
}

/// The cell `name` names (`lstm`, `gru` or `rnn`).
fn cell(name: &str) -> Result<RnnCell> {
    match name.trim() {
        "lstm" => Ok(RnnCell::Lstm),
        "gru" => Ok(RnnCell::Gru),
        "rnn" => Ok(RnnCell::Tanh),
        other => Err(Error::invalid(
            "--cells",
            format!("{other:?}: lstm, gru or rnn (one of them with --lockstep)"),
        )),
    }
}

/// The milliseconds per training step of `cell`: the `--quantile` of the rounds.
fn time_cell(cell: RnnCell, args: &Args, device: &Device) -> Result<f64> {
    wgnn::rng::manual_seed(0);
    let mut model = RnnLm::new(cell, VOCAB, args.hidden, 1, device)?;
    let mut opt = Optimizer::sgd(1.0);
    let (t, b) = (args.steps, args.batch);
    // Fixed pseudo-random token ids: inputs [T, B] and targets [T·B], time-major.
    let mut seed = 7u32;
    let mut ids = || -> Vec<u32> {
        (0..t * b)
            .map(|_| {
                seed = wgnn::rng::hash_u32(seed);
                seed % VOCAB as u32
            })
            .collect()
    };
    let x = Tensor::from_slice(&ids(), [t, b], device)?;
    let y = Tensor::from_slice(&ids(), [t * b], device)?;
    let mut state: Option<RnnState> = None;
    let mut step = || -> Result<()> {
        if state.is_none() {
            state = Some(model.rnn.zero_state(b, device)?);
        }
        let (logits, next) = model.forward_ids(&x, state.as_ref())?;
        let loss = cross_entropy(&logits, &y)?;
        loss.backward()?;
        clip_grad_norm(model.named_parameters(), 1.0)?;
        opt.step(model.named_parameters())?;
        model.zero_grad();
        state = Some(next.detach());
        device.flush()
    };
    for _ in 0..args.warmup {
        step()?;
    }
    device.sync()?;
    if args.lockstep {
        println!("ready");
        for line in std::io::stdin().lines() {
            let line = line.map_err(|e| Error::invalid("--lockstep", format!("stdin: {e}")))?;
            if line.trim() != "go" {
                break;
            }
            let start = Instant::now();
            for _ in 0..args.steps_per_round {
                step()?;
            }
            device.sync()?;
            let ms = start.elapsed().as_secs_f64() * 1e3 / args.steps_per_round as f64;
            println!("{ms:.4}");
        }
        return Ok(f64::NAN);
    }
    let mut rounds = Vec::with_capacity(args.rounds);
    let clock = || -> Result<f64> {
        match args.clock.as_str() {
            "wall" => Ok(Instant::now().duration_since(*EPOCH).as_secs_f64()),
            "cpu" => process_cpu_seconds(),
            other => Err(Error::invalid("--clock", format!("{other:?}: wall or cpu"))),
        }
    };
    for _ in 0..args.rounds.max(1) {
        let start = clock()?;
        for _ in 0..args.steps_per_round {
            step()?;
        }
        device.sync()?;
        rounds.push((clock()? - start) * 1e3 / args.steps_per_round as f64);
    }
    rounds.sort_by(f64::total_cmp);
    let at = (args.quantile.clamp(0.0, 1.0) * (rounds.len() - 1) as f64).round() as usize;
    Ok(rounds[at])
}
