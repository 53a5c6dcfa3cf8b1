//! d2l's character language model (ch. 9, v0.17 setup) on The Time Machine: one-hot
//! characters → an RNN, GRU or LSTM → a linear layer to the 28-token vocabulary, trained with
//! SGD (lr 1) on the sequential partition (batch 32, 35 steps, the state detached between
//! consecutive batches: truncated backpropagation through time), the global gradient norm
//! clipped at 1. The last 10 % of the text is held out: the validation perplexity is on text
//! the model never trained on. Prints d2l's `perplexity X, Y tokens/sec on DEVICE` and
//! 50-character predictions for `time traveller` and `traveller`.
//!
//! ```text
//! cargo run --release --example char_lm -- --device cpu --cell lstm --epochs 20
//! /work/venv-torch/bin/python benches/char_lm.py --cell lstm --epochs 20   # the PyTorch twin
//! ```

use clap::Parser;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Instant;
use wgnn::autograd::no_grad;
use wgnn::data::{Partition, SeqBatch, SeqDataLoader, TimeMachine, seq_data_iter_sequential_at};
use wgnn::models::RnnLm;
use wgnn::nn::{ModuleExt, RnnCell, RnnState, cross_entropy};
use wgnn::optim::{Optimizer, clip_grad_norm};
use wgnn::plot::{LineChart, Series};
use wgnn::tensorboard::SummaryWriter;
use wgnn::train::checkpoint;
use wgnn::{Device, Error, Result, Tensor};

/// Train d2l's character-level language model on The Time Machine.
#[derive(Parser)]
#[command(about)]
struct Args {
    /// Device: cpu, gpu, gpu:N or auto.
    #[arg(long, default_value = "auto", env = "WGNN_DEVICE")]
    device: String,
    /// The recurrent cell: rnn, gru or lstm.
    #[arg(long, default_value = "lstm")]
    cell: String,
    /// Stacked recurrent layers.
    #[arg(long, default_value_t = 1)]
    layers: usize,
    /// Hidden units per layer.
    #[arg(long, default_value_t = 256)]
    hidden: usize,
    /// Time steps per batch (truncated BPTT length).
    #[arg(long, default_value_t = 35)]
    steps: usize,
    /// Sequences per batch.
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// Optimizer (sgd, momentum, adam, …).
    #[arg(long, default_value = "sgd")]
    optimizer: String,
    /// Learning rate (d2l: 1 with SGD).
    #[arg(long, default_value_t = 1.0)]
    lr: f32,
    /// Clip the global gradient norm at this value.
    #[arg(long, default_value_t = 1.0)]
    clip: f32,
    /// Epochs (passes over the training part), counting those restored by --resume.
    #[arg(long, default_value_t = 20)]
    epochs: usize,
    /// Partition of the training text: sequential (state carried) or random (state reset).
    #[arg(long, default_value = "sequential")]
    partition: String,
    /// Seed of the weights and of every epoch's offset (the twin draws the same offsets).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Characters to predict after each prefix.
    #[arg(long, default_value_t = 50)]
    predict_len: usize,
    /// Write the per-epoch figures and the predictions as JSON here.
    #[arg(long)]
    metrics_out: Option<PathBuf>,
    /// Save `last.safetensors` and `epoch-N.safetensors` here after every epoch.
    #[arg(long)]
    checkpoint_dir: Option<PathBuf>,
    /// Resume from this checkpoint (e.g. CHECKPOINT_DIR/last.safetensors).
    #[arg(long)]
    resume: Option<PathBuf>,
    /// Draw the perplexity curves into DIR/perplexity.png.
    #[arg(long)]
    plots: Option<PathBuf>,
    /// Also draw this metrics JSON's validation curve (the PyTorch twin's `--out`).
    #[arg(long)]
    compare_with: Option<PathBuf>,
    /// Write TensorBoard event files into this directory.
    #[arg(long)]
    tensorboard: Option<PathBuf>,
}

fn main() {
    if let Err(e) = run(Args::parse()) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

/// One epoch's figures.
struct Epoch {
    epoch: usize,
    updates: u64,
    train_ppl: f64,
    val_ppl: f64,
    tokens_per_sec: f64,
    seconds: f64,
}

fn run(args: Args) -> Result<()> {
    let cell = match args.cell.as_str() {
        "rnn" => RnnCell::Tanh,
        "gru" => RnnCell::Gru,
        "lstm" => RnnCell::Lstm,
        other => {
            return Err(Error::invalid(
                "--cell",
                format!("unknown cell \"{other}\" (rnn, gru, lstm)"),
            ));
        }
    };
    let partition = Partition::parse(&args.partition)?;
    // Everything the user named is checked before any work.
    for (flag, dir) in [
        ("--plots", &args.plots),
        ("--tensorboard", &args.tensorboard),
        ("--checkpoint-dir", &args.checkpoint_dir),
    ] {
        if let Some(d) = dir {
            wgnn::cli::check_output_dir(flag, d)?;
        }
    }
    if let Some(f) = &args.metrics_out {
        wgnn::cli::check_output_file("--metrics-out", f)?;
    }
    let mut opt = Optimizer::by_name(&args.optimizer, Some(args.lr))?;
    opt.validate()
        .map_err(|e| Error::invalid("--lr", e.to_string()))?;
    let resumed = match &args.resume {
        Some(p) => Some(checkpoint::run_id_of(p)?),
        None => None,
    };
    if let Some(dir) = &args.checkpoint_dir {
        checkpoint::check_dir(dir, resumed.clone().flatten().as_deref())?;
    }

    let device = Device::from_spec(&args.device)?;
    let tm = TimeMachine::load_default()?;
    let (train, val) = (tm.train(), tm.validation());
    println!(
        "char_lm: {} {}×{} on {device}; vocabulary {}, {} training and {} validation characters \
         (the last 10 %), batch {} × {} steps, {} partition, {} lr {}",
        cell.name(),
        args.layers,
        args.hidden,
        tm.vocab.len(),
        train.len(),
        val.len(),
        args.batch,
        args.steps,
        partition.name(),
        args.optimizer,
        args.lr
    );
    wgnn::manual_seed(args.seed);
    let mut model = RnnLm::new(cell, tm.vocab.len(), args.hidden, args.layers, &device)?;
    let loader = SeqDataLoader::new(train, args.batch, args.steps, partition, args.seed)?;
    let (mut first, mut run_id) = (0, checkpoint::new_run_id());
    if let Some(path) = &args.resume {
        let info = checkpoint::load(path, &mut model, &mut opt)?;
        println!(
            "resumed from {} after epoch {} ({} updates)",
            path.display(),
            info.epoch,
            info.optim_steps
        );
        first = info.epoch;
        run_id = info.run_id.unwrap_or(run_id);
    }
    let mut board = match &args.tensorboard {
        Some(d) => Some(SummaryWriter::new(d)?),
        None => None,
    };
    let mut epochs = Vec::new();
    for epoch in first..args.epochs {
        let t0 = Instant::now();
        let (train_ppl, tokens) =
            train_epoch(&mut model, &mut opt, &loader, epoch, &args, &device)?;
        let seconds = t0.elapsed().as_secs_f64();
        let val_ppl = evaluate(&mut model, val, args.batch, args.steps, &device)?;
        let e = Epoch {
            epoch: epoch + 1,
            updates: opt.steps(),
            train_ppl,
            val_ppl,
            tokens_per_sec: tokens as f64 / seconds,
            seconds,
        };
        println!(
            "epoch {}/{}: {} updates, train perplexity {:.3}, validation perplexity {:.3}, \
             {:.1} tokens/sec",
            e.epoch, args.epochs, e.updates, e.train_ppl, e.val_ppl, e.tokens_per_sec
        );
        if let Some(b) = &mut board {
            let step = e.updates as i64;
            b.add_scalar("train/perplexity", e.train_ppl as f32, step)?;
            b.add_scalar("val/perplexity", e.val_ppl as f32, step)?;
            b.add_scalar("train/tokens_per_sec", e.tokens_per_sec as f32, step)?;
        }
        if let Some(dir) = &args.checkpoint_dir {
            for name in [
                format!("epoch-{}.safetensors", e.epoch),
                "last.safetensors".into(),
            ] {
                checkpoint::save_in_run(&dir.join(name), &mut model, &opt, e.epoch, &run_id)?;
            }
        }
        epochs.push(e);
    }
    let mut predictions = Vec::new();
    for prefix in ["time traveller", "traveller"] {
        let ids = model.predict(&tm.vocab.encode(prefix), args.predict_len)?;
        let text = tm.vocab.decode(&ids)?;
        println!("{text}");
        predictions.push(json!({"prefix": prefix, "text": text}));
    }
    if let Some(last) = epochs.last() {
        println!(
            "perplexity {:.1}, {:.1} tokens/sec on {device}",
            last.train_ppl, last.tokens_per_sec
        );
    }
    if let Some(dir) = &args.plots {
        let path = plot(&epochs, cell, args.compare_with.as_deref(), dir)?;
        println!("wrote {}", path.display());
    }
    if let Some(path) = &args.metrics_out {
        let rows: Vec<_> = epochs
            .iter()
            .map(|e| {
                json!({"epoch": e.epoch, "updates": e.updates, "train_perplexity": e.train_ppl,
                       "val_perplexity": e.val_ppl, "tokens_per_sec": e.tokens_per_sec,
                       "train_seconds": e.seconds})
            })
            .collect();
        let doc = json!({
            "framework": "wgnn", "cell": args.cell, "layers": args.layers, "hidden": args.hidden,
            "steps": args.steps, "batch": args.batch, "optimizer": args.optimizer, "lr": args.lr,
            "partition": partition.name(), "seed": args.seed, "device": device.to_string(),
            "epochs": rows, "predictions": predictions,
        });
        let text = serde_json::to_string_pretty(&doc)
            .map_err(|e| Error::invalid("--metrics-out", e.to_string()))?;
        std::fs::write(path, text).map_err(|e| Error::io(path, e))?;
    }
    Ok(())
}

/// The token ids of a batch as `[T, B]` and the targets as `[T·B]`, time-major.
fn batch_tensors(b: &SeqBatch, device: &Device) -> Result<(Tensor, Tensor)> {
    let (bs, t) = (b.batch_size, b.num_steps);
    let x = Tensor::from_slice(&b.x_time_major(), [t, bs], device)?;
    let y = Tensor::from_slice(&b.y_time_major(), [t * bs], device)?;
    Ok((x, y))
}

/// d2l's `train_epoch_ch8`: returns the training perplexity (exp of the mean loss per token)
/// and the tokens seen. The loss is summed on the device and read once, at the end.
fn train_epoch(
    model: &mut RnnLm,
    opt: &mut Optimizer,
    loader: &SeqDataLoader,
    epoch: usize,
    args: &Args,
    device: &Device,
) -> Result<(f64, usize)> {
    let random = loader.partition() == Partition::Random;
    let mut state: Option<RnnState> = None;
    let mut loss_sum = Tensor::zeros([1], wgnn::DType::F32, device)?;
    let (mut tokens, mut batches) = (0, 0usize);
    for b in loader.epoch(epoch as u64) {
        let (x, y) = batch_tensors(&b, device)?;
        if state.is_none() || random {
            state = Some(model.rnn.zero_state(b.batch_size, device)?);
        }
        let (logits, next) = model.forward_ids(&x, state.as_ref())?;
        let loss = cross_entropy(&logits, &y)?;
        loss.backward()?;
        clip_grad_norm(model.named_parameters(), args.clip)?;
        opt.step(model.named_parameters())?;
        model.zero_grad();
        loss_sum = loss_sum.add(&loss.detach().reshape([1])?)?;
        state = Some(next.detach());
        tokens += y.numel();
        batches += 1;
        device.flush()?;
    }
    if batches == 0 {
        return Err(Error::invalid("char_lm", "the training text gave no batch"));
    }
    // Every batch has B·T targets, so the mean of the batch means is the mean per token.
    let mean = loss_sum.item()? as f64 / batches as f64;
    Ok((mean.exp(), tokens))
}

/// Perplexity over `text` by the sequential partition at offset 0, the state carried from
/// batch to batch (as the twin's `evaluate`).
fn evaluate(
    model: &mut RnnLm,
    text: &[u32],
    batch: usize,
    steps: usize,
    device: &Device,
) -> Result<f64> {
    let _guard = no_grad();
    let mut state: Option<RnnState> = None;
    let mut loss_sum = Tensor::zeros([1], wgnn::DType::F32, device)?;
    let mut batches = 0usize;
    for b in seq_data_iter_sequential_at(text, batch, steps, 0)? {
        let (x, y) = batch_tensors(&b, device)?;
        if state.is_none() {
            state = Some(model.rnn.zero_state(b.batch_size, device)?);
        }
        let (logits, next) = model.forward_ids(&x, state.as_ref())?;
        loss_sum = loss_sum.add(&cross_entropy(&logits, &y)?.reshape([1])?)?;
        state = Some(next);
        batches += 1;
    }
    if batches == 0 {
        return Err(Error::invalid(
            "char_lm",
            "the validation text gave no batch",
        ));
    }
    Ok((loss_sum.item()? as f64 / batches as f64).exp())
}

/// `DIR/perplexity.png`: training and validation perplexity per epoch, and the validation
/// curve of another run's metrics JSON when given.
fn plot(epochs: &[Epoch], cell: RnnCell, other: Option<&Path>, dir: &Path) -> Result<PathBuf> {
    let pts = |f: fn(&Epoch) -> f64| -> Vec<(f64, f64)> {
        epochs.iter().map(|e| (e.epoch as f64, f(e))).collect()
    };
    let mut series = vec![
        Series::new("wgnn train", pts(|e| e.train_ppl)),
        Series::new("wgnn validation", pts(|e| e.val_ppl)),
    ];
    if let Some(path) = other {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let doc: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| Error::invalid("--compare-with", format!("{}: {e}", path.display())))?;
        let points: Vec<(f64, f64)> = doc["epochs"]
            .as_array()
            .map(|rows| {
                rows.iter()
                    .filter_map(|r| Some((r["epoch"].as_f64()?, r["val_perplexity"].as_f64()?)))
                    .collect()
            })
            .unwrap_or_default();
        let name = doc["framework"].as_str().unwrap_or("PyTorch");
        series.push(Series::new(format!("{name} validation"), points));
    }
    let chart = LineChart {
        title: format!("{} character model on The Time Machine", cell.name()),
        x_label: "epoch".into(),
        y_label: "perplexity".into(),
        series,
        y_range: None,
    };
    let path = dir.join("perplexity.png");
    chart.save_png(&path)?;
    Ok(path)
}
