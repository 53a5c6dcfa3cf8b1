//! The training loop for any [`Module`] and loss function: epochs of shuffled mini-batches,
//! evaluation on the full test set after each epoch, progress, metrics and checkpoints.
//!
//! A hand-written loop is as short as PyTorch's (this is [`train_step`]):
//!
//! ```no_run
//! # use wgnn::nn::{Module, ModuleExt, cross_entropy};
//! # fn step(model: &mut wgnn::nn::Sequential, opt: &mut wgnn::optim::Optimizer,
//! #         x: &wgnn::Tensor, t: &wgnn::Tensor) -> wgnn::Result<()> {
//! model.zero_grad();
//! let loss = cross_entropy(&model.forward(x)?, t)?;
//! loss.backward()?;
//! opt.step(model.named_parameters())?;
//! # Ok(()) }
//! ```
//!
//! On a GPU a training step is recorded into one command buffer and submitted once; the only
//! readback is the running loss sum (4 bytes) every `log_every` steps and at the end of an
//! epoch. Accuracy is counted on the device and read once per evaluation.

pub mod checkpoint;

use crate::autograd::no_grad;
use crate::data::DeviceDataset;
use crate::device::Device;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::nn::{Module, ModuleExt};
use crate::optim::{LossScaler, Optimizer};
use crate::tensor::Tensor;
#[cfg(feature = "cli")]
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Instant;

/// The arithmetic of training.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// f32 everywhere.
    F32,
    /// f16 activations and gradients, f32 master weights and optimizer state, dynamic loss
    /// scaling ([`LossScaler`]).
    Mixed,
}

impl Precision {
    /// Parses `f32`, `mixed`, `f16` or `auto` for `device`, returning the choice and why.
    /// `auto` picks mixed only on a hardware GPU with SHADER_F16 (on the CPU backend and on
    /// software adapters f16 costs conversions and buys nothing).
    pub fn resolve(spec: &str, device: &Device) -> Result<(Precision, String)> {
        let f16_gpu = device
            .gpu_context()
            .map(|c| (c.supports_f16(), c.summary().is_hardware()));
        match spec.to_ascii_lowercase().as_str() {
            "f32" => Ok((Precision::F32, "asked for".into())),
            "mixed" => match f16_gpu {
                Some((false, _)) => Err(Error::UnsupportedDType {
                    op: "--precision mixed",
                    dtype: DType::F16,
                    why: format!("on {device}: it lacks SHADER_F16; use --precision f32"),
                }),
                _ => Ok((Precision::Mixed, "asked for".into())),
            },
            "f16" => Err(Error::invalid(
                "--precision",
                "pure f16 training (f16 weights and optimizer state) is not offered: f16 weight updates lose \
                 small steps; use --precision mixed (f16 compute, f32 master weights, loss scaling)",
            )),
            "auto" => Ok(match f16_gpu {
                Some((true, true)) => (Precision::Mixed, "a hardware GPU with SHADER_F16".into()),
                Some((true, false)) => (
                    Precision::F32,
                    "f16 is slower than f32 on a software adapter".into(),
                ),
                Some((false, _)) => (Precision::F32, "the adapter lacks SHADER_F16".into()),
                None => (
                    Precision::F32,
                    "the CPU backend computes f16 in f32 anyway".into(),
                ),
            }),
            other => Err(Error::invalid(
                "--precision",
                format!("unknown precision \"{other}\" (f32, mixed, f16, auto)"),
            )),
        }
    }
}

/// How the learning rate moves over a run, per step.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LrSchedule {
    /// The optimizer's rate throughout (the book's runs).
    #[default]
    Constant,
    /// Half a cosine from the base rate down to 0 at the last step of the last epoch
    /// (PyTorch's `CosineAnnealingLR` with `T_max` = all steps, stepped per batch).
    Cosine,
    /// The base rate for the first half of the epochs (rounded up), then half a cosine down
    /// to 0 over the rest. A one-epoch run is the constant-rate run.
    FlatCosine,
    /// The base rate times `gamma` after every `every` epochs (PyTorch's `StepLR`).
    Step {
        /// Epochs between decays.
        every: u32,
        /// Factor per decay.
        gamma: f32,
    },
}

impl LrSchedule {
    /// Parses `constant`, `cosine`, `flat-cosine` or `step:EVERY:GAMMA` (e.g. `step:10:0.1`).
    pub fn parse(spec: &str) -> Result<LrSchedule> {
        const OPT: &str = "--lr-schedule";
        let lower = spec.to_ascii_lowercase();
        if let Some(rest) = lower.strip_prefix("step:") {
            let bad = || {
                Error::invalid(
                    OPT,
                    format!(
                        "\"{spec}\": want step:EVERY:GAMMA with EVERY ≥ 1 epochs and 0 < GAMMA ≤ 1"
                    ),
                )
            };
            let (every, gamma) = rest.split_once(':').ok_or_else(bad)?;
            let every: u32 = every.parse().map_err(|_| bad())?;
            let gamma: f32 = gamma.parse().map_err(|_| bad())?;
            if every == 0 || !(gamma > 0.0 && gamma <= 1.0) {
                return Err(bad());
            }
            return Ok(LrSchedule::Step { every, gamma });
        }
        match lower.as_str() {
            "constant" => Ok(LrSchedule::Constant),
            "cosine" => Ok(LrSchedule::Cosine),
            "flat-cosine" => Ok(LrSchedule::FlatCosine),
            other => Err(Error::invalid(
                OPT,
                format!(
                    "unknown schedule \"{other}\" (constant, cosine, flat-cosine, step:EVERY:GAMMA)"
                ),
            )),
        }
    }

    /// The rate at 0-based `step` of a run of `epochs` epochs of `steps_per_epoch` steps.
    pub fn lr(self, base: f32, step: u64, steps_per_epoch: u64, epochs: u64) -> f32 {
        let total = steps_per_epoch * epochs;
        let flat = match self {
            LrSchedule::Constant => return base,
            LrSchedule::Step { every, gamma } => {
                let decays = (step / steps_per_epoch.max(1)) / every.max(1) as u64;
                return (base as f64 * (gamma as f64).powi(decays as i32)) as f32;
            }
            LrSchedule::Cosine => 0,
            LrSchedule::FlatCosine => steps_per_epoch * epochs.div_ceil(2),
        };
        if step < flat || total <= flat {
            return base;
        }
        let x = (step - flat).min(total - flat) as f64 / (total - flat) as f64;
        (0.5 * base as f64 * (1.0 + (std::f64::consts::PI * x).cos())) as f32
    }
}

/// How to train.
#[derive(Clone, Debug)]
pub struct TrainConfig {
    /// Epochs to run (in total, counting those restored by `resume`).
    pub epochs: usize,
    /// Mini-batch size.
    pub batch_size: usize,
    /// Seed of the per-epoch shuffles.
    pub seed: u64,
    /// Batch size for evaluation.
    pub eval_batch_size: usize,
    /// Steps between loss readbacks for the progress bar.
    pub log_every: usize,
    /// Show an indicatif progress bar on stderr (it also hides itself when stderr is not a
    /// terminal; needs the `cli` feature). Off by default.
    pub progress: bool,
    /// Print a one-line summary per epoch on stdout. Off by default: a library caller of
    /// [`fit`] gets no output unless it asks.
    pub verbose: bool,
    /// Write `epoch-N.safetensors` and `last.safetensors` here after every epoch.
    pub checkpoint_dir: Option<PathBuf>,
    /// Continue from this checkpoint.
    pub resume: Option<PathBuf>,
    /// f32 or mixed precision.
    pub precision: Precision,
    /// The learning-rate schedule over all `epochs` (from the optimizer's rate).
    pub lr_schedule: LrSchedule,
    /// Augment every training batch on the device with these bounds (the seed and offset are
    /// set per epoch and batch from `seed`); evaluation sees the images as they are.
    pub augment: Option<crate::ops::AugmentSpec>,
    /// Write TensorBoard event files into this directory as training goes: the running loss
    /// at every logged step (`train/loss_running`) and, per epoch, `train/loss`,
    /// `train/accuracy`, `val/loss`, `val/accuracy`, `test/accuracy` and `lr`, at the global
    /// step.
    pub tensorboard: Option<PathBuf>,
    /// Ramp the rate linearly up from near 0 over this many first epochs (on top of the
    /// schedule), as a warmup.
    pub warmup_epochs: usize,
    /// Stop when the validation accuracy has not improved for this many epochs (needs a
    /// validation set). With `checkpoint_dir`, `best.safetensors` holds the best epoch's
    /// weights either way.
    pub patience: Option<usize>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 20,
            batch_size: 100,
            seed: 0,
            eval_batch_size: 200,
            log_every: 50,
            progress: false,
            verbose: false,
            checkpoint_dir: None,
            resume: None,
            precision: Precision::F32,
            lr_schedule: LrSchedule::Constant,
            augment: None,
            tensorboard: None,
            warmup_epochs: 0,
            patience: None,
        }
    }
}

/// Figures of one epoch.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Mean training loss over the epoch's steps.
    pub train_loss: f64,
    /// Fraction of training examples classified correctly during the epoch (dropout on).
    pub train_accuracy: f64,
    /// Loss on the validation set after the epoch, if one was held out.
    pub val_loss: Option<f64>,
    /// Accuracy on the validation set after the epoch (0–1), if one was held out.
    pub val_accuracy: Option<f64>,
    /// Accuracy on the test set after the epoch (0–1).
    pub test_accuracy: f64,
    /// Training images per second (training phase only).
    pub images_per_sec: f64,
    /// Seconds of training in this epoch (evaluation excluded).
    pub seconds: f64,
    /// Seconds of evaluation after this epoch.
    pub eval_seconds: f64,
}

/// The result of a run (also the `--metrics-out` JSON).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Metrics {
    /// The device trained on.
    pub device: String,
    /// Final test accuracy (0–1).
    pub test_accuracy: f64,
    /// Per-epoch figures (epochs run in this process).
    pub epochs: Vec<EpochMetrics>,
    /// Mean training images/s over the epochs.
    pub images_per_sec: f64,
    /// Training examples used.
    pub train_examples: usize,
    /// Test examples evaluated.
    pub test_examples: usize,
    /// Mini-batch size.
    pub batch_size: usize,
    /// Trainable parameters.
    pub parameters: usize,
    /// GPU submits per training step, averaged (0 on the CPU).
    pub submits_per_step: f64,
    /// Bytes read back per training step, averaged (0 on the CPU).
    pub bytes_read_back_per_step: f64,
    /// Bytes uploaded per training step, averaged (0 on the CPU).
    pub bytes_uploaded_per_step: f64,
    /// The running mean training loss at every log point (`log_every` steps).
    pub loss_log: Vec<LossPoint>,
    /// f32 or mixed.
    pub precision: Precision,
    /// The learning-rate schedule.
    pub lr_schedule: LrSchedule,
    /// The loss scale at the end (mixed precision; 1 otherwise).
    pub loss_scale: f64,
    /// Steps skipped by the loss scaler for non-finite gradients.
    pub skipped_steps: u64,
    /// The epoch with the best validation accuracy and that accuracy (with a validation set).
    #[serde(default)]
    pub best_epoch: Option<(usize, f64)>,
    /// Whether early stopping ended the run before its last epoch.
    #[serde(default)]
    pub stopped_early: bool,
}

/// The running mean loss of an epoch at one of its steps.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LossPoint {
    /// 1-based epoch.
    pub epoch: usize,
    /// Steps done in that epoch.
    pub step: usize,
    /// Mean loss over those steps.
    pub mean_loss: f64,
}

impl Metrics {
    /// The run in one line: final test accuracy, the best validation epoch (with a
    /// validation set), epochs run, throughput and training time.
    pub fn summary(&self) -> String {
        let secs: f64 = self.epochs.iter().map(|e| e.seconds + e.eval_seconds).sum();
        let best = match self.best_epoch {
            Some((e, a)) => format!(", best validation {:.2}% at epoch {e}", 100.0 * a),
            None => String::new(),
        };
        let stop = if self.stopped_early {
            " (stopped early)"
        } else {
            ""
        };
        format!(
            "summary: test accuracy {:.2}%{best}; {} epochs{stop}, {:.0} images/s, {:.0} s on {}",
            100.0 * self.test_accuracy,
            self.epochs.len(),
            self.images_per_sec,
            secs,
            self.device
        )
    }

    /// Reads metrics written by [`Metrics::write_json`] (`--metrics-out`).
    pub fn read_json(path: &std::path::Path) -> Result<Metrics> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        serde_json::from_str(&text)
            .map_err(|e| Error::data(path, format!("not a wgnn metrics file: {e}")))
    }

    /// Writes the metrics as pretty JSON.
    pub fn write_json(&self, path: &std::path::Path) -> Result<()> {
        let json = serde_json::to_string_pretty(self)
            .map_err(|e| Error::invalid("metrics", e.to_string()))?;
        std::fs::write(path, json + "\n").map_err(|e| Error::io(path, e))
    }
}

/// A loss: from the model's output and the labels, a one-element tensor to backpropagate.
pub type LossFn = dyn Fn(&Tensor, &Tensor) -> Result<Tensor>;

/// Fraction of `data` the model classifies correctly (evaluation mode, no graph recorded;
/// restores training mode). Inputs are fed in the model's dtype ([`ModuleExt::dtype`]), so
/// an f16 model runs f16 kernels end to end.
pub fn evaluate(model: &mut dyn Module, data: &DeviceDataset, batch_size: usize) -> Result<f64> {
    let dtype = model.dtype();
    evaluate_with(model, data, batch_size, |x| x.to_dtype(dtype))
}

/// [`evaluate`] with each input batch passed through `prepare` first (e.g. rounding it to the
/// f16 grid, as the book's `half_float_network.py` does).
pub fn evaluate_with(
    model: &mut dyn Module,
    data: &DeviceDataset,
    batch_size: usize,
    prepare: impl Fn(Tensor) -> Result<Tensor>,
) -> Result<f64> {
    Ok(eval_pass(model, data, batch_size, &prepare, None, None)?.1)
}

/// The class `model` predicts for every example of `data`, in order (evaluation mode, no
/// graph; restores training mode): the argmax of each output row, read back batch by batch.
pub fn predict(
    model: &mut dyn Module,
    data: &DeviceDataset,
    batch_size: usize,
) -> Result<Vec<u32>> {
    Ok(predict_confidence(model, data, batch_size)?
        .into_iter()
        .map(|(class, _)| class)
        .collect())
}

/// [`predict`] with each prediction's softmax probability (how sure the model is): the
/// first largest output of each row and its probability.
pub fn predict_confidence(
    model: &mut dyn Module,
    data: &DeviceDataset,
    batch_size: usize,
) -> Result<Vec<(u32, f32)>> {
    let dtype = model.dtype();
    let mut preds = Vec::with_capacity(data.len());
    eval_pass(
        model,
        data,
        batch_size,
        &|x| x.to_dtype(dtype),
        None,
        Some(&mut preds),
    )?;
    Ok(preds)
}

/// The evaluation loop behind [`evaluate_with`] and [`evaluate_loss`]: evaluation mode, no
/// graph, accuracy (and with `loss_fn` the mean loss, computed in f32) counted on the device
/// and read back once at the end; training mode is restored even on an error.
fn eval_pass(
    model: &mut dyn Module,
    data: &DeviceDataset,
    batch_size: usize,
    prepare: &dyn Fn(Tensor) -> Result<Tensor>,
    loss_fn: Option<&LossFn>,
    mut preds: Option<&mut Vec<(u32, f32)>>,
) -> Result<(f64, f64)> {
    if data.is_empty() || batch_size == 0 {
        return Err(Error::invalid(
            "evaluate",
            format!("{} examples in batches of {batch_size}", data.len()),
        ));
    }
    let _no_grad = no_grad();
    model.eval();
    let device = data.device();
    let order = data.ordered()?;
    let mut correct = Tensor::zeros([1], DType::U32, &device)?;
    let mut loss_sum = Tensor::zeros([1], DType::F32, &device)?;
    let mut offset = 0;
    let r = (|| -> Result<()> {
        while offset < data.len() {
            let count = batch_size.min(data.len() - offset);
            let (x, t) = data.batch(&order, offset, count)?;
            let out = model.forward(&prepare(x)?)?;
            out.count_correct_into(&t, &mut correct)?;
            if let Some(p) = preds.as_deref_mut() {
                let classes = out.numel() / count;
                let probs = out
                    .reshape([count, classes])?
                    .to_dtype(DType::F32)?
                    .softmax(-1)?
                    .to_vec::<f32>()?;
                p.extend(probs.chunks_exact(classes).map(|row| {
                    let best = row
                        .iter()
                        .enumerate()
                        .fold(0, |b, (i, &v)| if v > row[b] { i } else { b });
                    (best as u32, row[best])
                }));
            }
            if let Some(loss_fn) = loss_fn {
                let loss = loss_fn(&out.to_dtype(DType::F32)?, &t)?;
                loss_sum.axpy_(count as f32, &loss.reshape([1])?)?;
            }
            device.flush()?;
            offset += count;
        }
        Ok(())
    })();
    model.train();
    r?;
    let v = Tensor::read_scalars(&[&loss_sum, &correct])?;
    Ok((v[0] / data.len() as f64, v[1] / data.len() as f64))
}

/// One epoch of full batches (a last partial batch is dropped, as the book's loops do) in
/// the seeded shuffled order of `epoch`, one [`train_step`] each; nothing is read back.
pub fn train_epoch(
    model: &mut dyn Module,
    loss_fn: &LossFn,
    opt: &mut Optimizer,
    data: &DeviceDataset,
    batch_size: usize,
    seed: u64,
    epoch: usize,
) -> Result<()> {
    if batch_size == 0 || batch_size > data.len() {
        return Err(Error::invalid(
            "train_epoch",
            format!("batch of {batch_size} from {} examples", data.len()),
        ));
    }
    let order = data.shuffled(seed, epoch)?;
    for offset in (0..=data.len() - batch_size).step_by(batch_size) {
        let (x, t) = data.batch(&order, offset, batch_size)?;
        train_step(model, loss_fn, opt, &x, &t)?;
    }
    Ok(())
}

/// One optimisation step on a batch: zero the gradients, forward, loss, backward, update.
/// Returns `(loss [1], output)`, still on the device.
pub fn train_step(
    model: &mut dyn Module,
    loss_fn: &LossFn,
    opt: &mut Optimizer,
    x: &Tensor,
    t: &Tensor,
) -> Result<(Tensor, Tensor)> {
    model.zero_grad();
    let out = model.forward(x)?;
    let loss = loss_fn(&out, t)?;
    loss.backward()?;
    opt.step(model.named_parameters())?;
    Ok((loss.detach(), out.detach()))
}

/// A mixed-precision step (PyTorch's autocast + GradScaler recipe): the input goes in as f16
/// so every layer computes in f16 on f16 casts of its f32 master weights (the casts are
/// recorded, so the gradients come back f32); the loss is computed in f32 from the f32 cast
/// of the output, and backpropagated from the scaler's scale instead of 1; then the guarded
/// update ([`Optimizer::step_scaled`]). Returns `(f32 loss [1], output)`.
pub fn train_step_mixed(
    model: &mut dyn Module,
    loss_fn: &LossFn,
    opt: &mut Optimizer,
    scaler: &mut LossScaler,
    x: &Tensor,
    t: &Tensor,
) -> Result<(Tensor, Tensor)> {
    model.zero_grad();
    let out = model.forward(&x.to_dtype(DType::F16)?)?;
    let loss = loss_fn(&out.to_dtype(DType::F32)?, t)?;
    let mut seed = Tensor::full(loss.shape().clone(), 1.0, &loss.device())?;
    scaler.scale_(&mut seed)?;
    loss.backward_with(&seed)?;
    opt.step_scaled(model.named_parameters(), scaler)?;
    Ok((loss.detach(), out.detach()))
}

/// Trains `model` with `opt` on `train`, evaluating on `test` after every epoch.
pub fn fit(
    model: &mut dyn Module,
    loss_fn: &LossFn,
    opt: &mut Optimizer,
    train: &DeviceDataset,
    test: &DeviceDataset,
    cfg: &TrainConfig,
) -> Result<Metrics> {
    fit_validated(model, loss_fn, opt, train, None, test, cfg)
}

/// Mean loss and accuracy of `model` on `data` (evaluation mode, no graph; restores training
/// mode). One readback at the end.
pub fn evaluate_loss(
    model: &mut dyn Module,
    loss_fn: &LossFn,
    data: &DeviceDataset,
    batch_size: usize,
) -> Result<(f64, f64)> {
    let dtype = model.dtype();
    eval_pass(
        model,
        data,
        batch_size,
        &|x| x.to_dtype(dtype),
        Some(loss_fn),
        None,
    )
}

/// [`fit`] with a validation set (held out from the training data) evaluated after every
/// epoch beside the test set, its loss and accuracy reported: choose recipes on it, report
/// the test figures once.
#[allow(clippy::too_many_arguments)] // fit's arguments plus the validation set
pub fn fit_validated(
    model: &mut dyn Module,
    loss_fn: &LossFn,
    opt: &mut Optimizer,
    train: &DeviceDataset,
    val: Option<&DeviceDataset>,
    test: &DeviceDataset,
    cfg: &TrainConfig,
) -> Result<Metrics> {
    if cfg.batch_size == 0 || cfg.eval_batch_size == 0 {
        return Err(Error::invalid("fit", "batch sizes must be positive"));
    }
    if train.is_empty() {
        return Err(Error::invalid("fit", "empty training set"));
    }
    let device: Device = train.device();
    let mut first_epoch = 0;
    if let Some(path) = &cfg.resume {
        let info = checkpoint::load(path, model, opt)?;
        first_epoch = info.epoch;
        if cfg.verbose {
            println!(
                "resumed from {} after epoch {} ({} optimizer steps)",
                path.display(),
                info.epoch,
                info.optim_steps
            );
        }
    }
    if let Some(dir) = &cfg.checkpoint_dir {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    model.train();
    if model.dtype() != DType::F32 {
        return Err(Error::invalid(
            "fit",
            format!(
                "the model's parameters are {}: train f32 master weights (mixed precision \
                 computes in f16 from them)",
                model.dtype()
            ),
        ));
    }
    let mut scaler = match cfg.precision {
        Precision::F32 => None,
        Precision::Mixed => {
            if device.gpu_context().is_some_and(|c| !c.supports_f16()) {
                return Err(Error::UnsupportedDType {
                    op: "mixed precision",
                    dtype: DType::F16,
                    why: format!("on {device}: it lacks SHADER_F16"),
                });
            }
            Some(LossScaler::standard(&device)?)
        }
    };
    let steps_per_epoch = train.len().div_ceil(cfg.batch_size);
    let base_lr = opt.lr();
    let mut epochs = Vec::new();
    let mut loss_log = Vec::new();
    if cfg.patience.is_some() && val.is_none() {
        return Err(Error::invalid(
            "fit",
            "early stopping (patience) needs a validation set: hold one out (--val-split)",
        ));
    }
    if cfg.patience == Some(0) {
        return Err(Error::invalid("fit", "patience must be at least 1 epoch"));
    }
    // (epoch, validation accuracy) of the best epoch so far, and whether patience ran out.
    let mut best: Option<(usize, f64)> = None;
    let mut stopped_early = false;
    let mut board = match &cfg.tensorboard {
        Some(dir) => Some(crate::tensorboard::SummaryWriter::new(dir)?),
        None => None,
    };
    let mut total_steps = 0u64;
    let mut step_counters = crate::gpu::Counters::default();
    for epoch in first_epoch..cfg.epochs {
        let bar = progress_bar(cfg, steps_per_epoch, epoch + 1, cfg.epochs);
        let order = train.shuffled(cfg.seed, epoch)?;
        let mut loss_sum = Tensor::zeros([1], DType::F32, &device)?;
        let mut correct = Tensor::zeros([1], DType::U32, &device)?;
        device.sync()?;
        let before = device.counters();
        let t0 = Instant::now();
        let mut offset = 0;
        for step in 0..steps_per_epoch {
            let count = cfg.batch_size.min(train.len() - offset);
            let (x, t) = train.batch(&order, offset, count)?;
            let x = match &cfg.augment {
                Some(a) => x.augment(&a.for_batch(cfg.seed, epoch, offset))?,
                None => x,
            };
            let global_step = (epoch * steps_per_epoch + step) as u64;
            let warmup = (cfg.warmup_epochs * steps_per_epoch) as u64;
            let ramp = if global_step < warmup {
                (global_step + 1) as f32 / warmup as f32
            } else {
                1.0
            };
            opt.set_lr(
                ramp * cfg.lr_schedule.lr(
                    base_lr,
                    global_step,
                    steps_per_epoch as u64,
                    cfg.epochs as u64,
                ),
            );
            let (loss, out) = match &mut scaler {
                Some(s) => train_step_mixed(model, loss_fn, opt, s, &x, &t)?,
                None => train_step(model, loss_fn, opt, &x, &t)?,
            };
            loss_sum.axpy_(1.0, &loss.reshape([1])?)?;
            if out.dims().len() == 2 && out.dims()[0] == count {
                out.count_correct_into(&t, &mut correct)?;
            }
            offset += count;
            if (step + 1) % cfg.log_every.max(1) != 0 && step + 1 != steps_per_epoch {
                device.flush()?; // the step's one submit
            } else {
                // The readback submits the step and the two 4-byte copies together: one submit.
                let v = Tensor::read_scalars(&[&loss_sum, &correct])?;
                let mean = v[0] / (step + 1) as f64;
                let train_acc = v[1] / offset as f64;
                if !mean.is_finite() {
                    return Err(Error::invalid(
                        "fit",
                        format!(
                            "training diverged: mean loss {mean} in epoch {} at step {}",
                            epoch + 1,
                            step + 1
                        ),
                    ));
                }
                let ips = offset as f64 / t0.elapsed().as_secs_f64();
                bar.set_position(step as u64 + 1);
                bar.set_message(format!(
                    "loss {mean:.4} | train acc {:.2}% | {ips:.0} img/s",
                    100.0 * train_acc
                ));
                loss_log.push(LossPoint {
                    epoch: epoch + 1,
                    step: step + 1,
                    mean_loss: mean,
                });
                if let Some(b) = &mut board {
                    let at = (epoch * steps_per_epoch + step + 1) as i64;
                    b.add_scalar("train/loss_running", mean as f32, at)?;
                }
                if cfg.verbose && !cfg.progress {
                    println!(
                        "  epoch {} step {:>5}/{steps_per_epoch}: mean loss {mean:.6}, train acc {:.2}%, {ips:.0} img/s",
                        epoch + 1,
                        step + 1,
                        100.0 * train_acc
                    );
                }
            }
        }
        device.sync()?;
        let seconds = t0.elapsed().as_secs_f64();
        let c = device.counters().since(&before);
        step_counters.submits += c.submits;
        step_counters.bytes_read_back += c.bytes_read_back;
        step_counters.bytes_uploaded += c.bytes_uploaded;
        total_steps += steps_per_epoch as u64;
        bar.finish_and_clear();
        let v = Tensor::read_scalars(&[&loss_sum, &correct])?;
        let (train_loss, train_accuracy) =
            (v[0] / steps_per_epoch as f64, v[1] / train.len() as f64);
        let e0 = Instant::now();
        let validation = match val {
            Some(v) => Some(evaluate_loss(model, loss_fn, v, cfg.eval_batch_size)?),
            None => None,
        };
        let acc = evaluate(model, test, cfg.eval_batch_size)?;
        let eval_seconds = e0.elapsed().as_secs_f64();
        let m = EpochMetrics {
            epoch: epoch + 1,
            train_loss,
            train_accuracy,
            val_loss: validation.map(|v| v.0),
            val_accuracy: validation.map(|v| v.1),
            test_accuracy: acc,
            images_per_sec: train.len() as f64 / seconds,
            seconds,
            eval_seconds,
        };
        if let (Some(s), true) = (&scaler, cfg.verbose) {
            let (scale, skipped) = s.read()?;
            println!("  loss scale {scale}, {skipped} steps skipped so far");
        }
        if cfg.verbose {
            let val_text = match validation {
                Some((l, a)) => format!("val loss {l:.4}, val acc {:.2}%, ", 100.0 * a),
                None => String::new(),
            };
            println!(
                "epoch {:>2}/{}: train loss {:.4}, train acc {:.2}%, {val_text}test acc {:.2}% ({} images), {:.0} img/s, {:.1} s train + {:.1} s eval",
                m.epoch,
                cfg.epochs,
                m.train_loss,
                100.0 * m.train_accuracy,
                100.0 * m.test_accuracy,
                test.len(),
                m.images_per_sec,
                m.seconds,
                m.eval_seconds
            );
        }
        if let Some(b) = &mut board {
            let at = ((epoch + 1) * steps_per_epoch) as i64;
            let mut scalars = vec![
                ("train/loss", m.train_loss),
                ("train/accuracy", m.train_accuracy),
                ("test/accuracy", m.test_accuracy),
                ("lr", opt.lr() as f64),
            ];
            if let Some((l, a)) = validation {
                scalars.extend([("val/loss", l), ("val/accuracy", a)]);
            }
            for (tag, v) in scalars {
                b.add_scalar(tag, v as f32, at)?;
            }
        }
        let improved = match (validation, best) {
            (Some((_, a)), Some((_, b))) => a > b,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if improved {
            best = validation.map(|(_, a)| (epoch + 1, a));
        }
        epochs.push(m);
        if let Some(dir) = &cfg.checkpoint_dir {
            let mut names = vec![
                format!("epoch-{}.safetensors", epoch + 1),
                "last.safetensors".to_string(),
            ];
            if improved {
                names.push("best.safetensors".to_string());
            }
            for name in names {
                checkpoint::save(&dir.join(name), model, opt, epoch + 1)?;
            }
        }
        if let (Some(p), Some((b, acc))) = (cfg.patience, best)
            && epoch + 1 - b >= p
            && epoch + 1 < cfg.epochs
        {
            if cfg.verbose {
                println!(
                    "early stop after epoch {}: validation accuracy {:.2}% at epoch {b} not bettered in {p} epochs",
                    epoch + 1,
                    100.0 * acc
                );
            }
            stopped_early = true;
            break;
        }
    }
    opt.set_lr(base_lr);
    let final_acc = match epochs.last() {
        Some(m) => m.test_accuracy,
        None => evaluate(model, test, cfg.eval_batch_size)?,
    };
    let (loss_scale, skipped_steps) = match &scaler {
        Some(s) => {
            let (scale, skipped) = s.read()?;
            (scale as f64, skipped)
        }
        None => (1.0, 0),
    };
    let per_step = |v: u64| {
        if total_steps == 0 {
            0.0
        } else {
            v as f64 / total_steps as f64
        }
    };
    Ok(Metrics {
        device: device.to_string(),
        test_accuracy: final_acc,
        images_per_sec: if epochs.is_empty() {
            0.0
        } else {
            epochs.iter().map(|e| e.images_per_sec).sum::<f64>() / epochs.len() as f64
        },
        epochs,
        train_examples: train.len(),
        test_examples: test.len(),
        batch_size: cfg.batch_size,
        parameters: model.num_params(),
        submits_per_step: per_step(step_counters.submits),
        bytes_read_back_per_step: per_step(step_counters.bytes_read_back),
        bytes_uploaded_per_step: per_step(step_counters.bytes_uploaded),
        loss_log,
        precision: cfg.precision,
        lr_schedule: cfg.lr_schedule,
        loss_scale,
        skipped_steps,
        best_epoch: best,
        stopped_early,
    })
}

/// Without the `cli` feature there is no progress bar: this stands in for indicatif's.
#[cfg(not(feature = "cli"))]
struct ProgressBar;

#[cfg(not(feature = "cli"))]
impl ProgressBar {
    fn set_position(&self, _: u64) {}
    fn set_message(&self, _: String) {}
    fn finish_and_clear(&self) {}
}

#[cfg(not(feature = "cli"))]
fn progress_bar(_: &TrainConfig, _: usize, _: usize, _: usize) -> ProgressBar {
    ProgressBar
}

#[cfg(feature = "cli")]
fn progress_bar(cfg: &TrainConfig, len: usize, epoch: usize, epochs: usize) -> ProgressBar {
    if !cfg.progress {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len as u64);
    let style =
        ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} steps {msg} ({eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
    bar.set_style(style);
    bar.set_prefix(format!("{epoch}/{epochs}"));
    bar
}

#[cfg(test)]
mod tests {
    use super::LrSchedule;

    #[test]
    fn lr_schedules() {
        let lr = |s: LrSchedule, step, spe, epochs| s.lr(0.001, step, spe, epochs);
        assert_eq!(lr(LrSchedule::Constant, 599, 600, 1), 0.001);
        // Cosine: full rate at step 0, half at the midpoint, ~0 at the last step.
        assert_eq!(lr(LrSchedule::Cosine, 0, 600, 20), 0.001);
        assert!((lr(LrSchedule::Cosine, 6000, 600, 20) - 0.0005).abs() < 1e-9);
        assert!(lr(LrSchedule::Cosine, 11_999, 600, 20) < 1e-10);
        // Flat-cosine over 20 epochs: flat for 10, then the cosine over the other 10.
        assert_eq!(lr(LrSchedule::FlatCosine, 5999, 600, 20), 0.001);
        assert_eq!(lr(LrSchedule::FlatCosine, 6000, 600, 20), 0.001);
        assert!(lr(LrSchedule::FlatCosine, 6001, 600, 20) < 0.001);
        assert!((lr(LrSchedule::FlatCosine, 9000, 600, 20) - 0.0005).abs() < 1e-9);
        // One epoch is the constant run; three decay over the last.
        assert_eq!(lr(LrSchedule::FlatCosine, 599, 600, 1), 0.001);
        assert_eq!(lr(LrSchedule::FlatCosine, 1199, 600, 3), 0.001);
        assert!((lr(LrSchedule::FlatCosine, 1500, 600, 3) - 0.0005).abs() < 1e-9);
        assert_eq!(
            LrSchedule::parse("Flat-Cosine").ok(),
            Some(LrSchedule::FlatCosine)
        );
        let e = LrSchedule::parse("linear").unwrap_err().to_string();
        assert!(e.contains("--lr-schedule") && e.contains("linear"), "{e}");
        // Step: ×0.1 after every 10 epochs of 600 steps.
        let step = LrSchedule::parse("step:10:0.1").unwrap();
        assert_eq!(
            step,
            LrSchedule::Step {
                every: 10,
                gamma: 0.1
            }
        );
        assert_eq!(lr(step, 5999, 600, 30), 0.001);
        assert!((lr(step, 6000, 600, 30) / 0.0001 - 1.0).abs() < 1e-6);
        assert!((lr(step, 12_000, 600, 30) / 0.00001 - 1.0).abs() < 1e-6);
        for bad in ["step:0:0.1", "step:10:1.5", "step:10", "step:x:0.1"] {
            let e = LrSchedule::parse(bad).unwrap_err().to_string();
            assert!(e.contains("step:EVERY:GAMMA"), "{bad}: {e}");
        }
    }
}
