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
//!
//! The parts, one file each:
//! - `config.rs`: [`TrainConfig`] and [`Precision`], what a run is asked to do;
//! - `schedule.rs`: [`LrSchedule`] and the warmup ramp;
//! - `step.rs`: [`train_step`], [`train_step_mixed`] and the plain [`train_epoch`];
//! - `eval.rs`: [`evaluate`], [`evaluate_loss`], [`predict`] and the per-epoch evaluation;
//! - `metrics.rs`: [`Metrics`], [`EpochMetrics`], [`LossPoint`];
//! - `checkpoint.rs`: the safetensors checkpoints [`fit`] saves and resumes from;
//! - and the parts of [`fit_validated`], which reads as their table of contents: `setup.rs`
//!   (checks, resume, loss scaler, TensorBoard writer), `epoch.rs` (one training epoch),
//!   `report.rs` (progress bar, printed lines, TensorBoard scalars per epoch) and `best.rs`
//!   (best epoch, checkpoints per epoch, early stopping).

mod best;
pub mod checkpoint;
mod config;
mod epoch;
mod eval;
mod metrics;
mod report;
mod schedule;
mod setup;
mod step;

pub use config::{Precision, TrainConfig};
pub use eval::{evaluate, evaluate_loss, evaluate_with, predict, predict_confidence};
pub use metrics::{EpochMetrics, LossPoint, Metrics};
pub use schedule::LrSchedule;
pub use step::{train_epoch, train_step, train_step_mixed};

use crate::data::DeviceDataset;
use crate::device::Device;
use crate::error::Result;
use crate::gpu::Counters;
use crate::nn::Module;
use crate::optim::{LossScaler, Optimizer};
use crate::tensor::Tensor;
use crate::tensorboard::SummaryWriter;

/// A loss: from the model's output and the labels, a one-element tensor to backpropagate.
pub type LossFn = dyn Fn(&Tensor, &Tensor) -> Result<Tensor>;

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

/// [`fit`] with a validation set (held out from the training data) evaluated after every
/// epoch beside the test set, its loss and accuracy reported: choose recipes on it, report
/// the test figures once.
///
/// Each epoch trains on the seeded shuffle of `train`, evaluates on `val` and `test`,
/// reports, keeps the best validation epoch, writes checkpoints, and stops early once
/// `cfg.patience` epochs have not bettered the best.
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
    let (mut run, first_epoch) = Run::start(model, loss_fn, opt, train, val, test, cfg)?;
    for epoch in first_epoch..cfg.epochs {
        let trained = run.fit_epoch(epoch)?;
        let m = run.evaluate_epoch(epoch, trained)?;
        run.report_epoch(&m)?;
        let improved = run.note_best(&m);
        run.epochs.push(m);
        run.save_checkpoints(epoch, improved)?;
        if run.patience_ran_out(epoch) {
            run.stopped_early = true;
            break;
        }
    }
    run.finish()
}

/// One [`fit_validated`] run: what it was given, what it set up before the first epoch
/// (`setup.rs`), and what it tallies from epoch to epoch into its [`Metrics`]. Its methods
/// live beside the part of the run they do, one file each (see the module header).
struct Run<'a> {
    model: &'a mut dyn Module,
    loss_fn: &'a LossFn,
    opt: &'a mut Optimizer,
    train: &'a DeviceDataset,
    val: Option<&'a DeviceDataset>,
    test: &'a DeviceDataset,
    cfg: &'a TrainConfig,
    /// The id written into this run's checkpoints (the resumed checkpoint's, or a new one).
    run_id: String,
    /// The training set's device, where the run's sums live.
    device: Device,
    /// Steps of one epoch, the last batch partial.
    steps_per_epoch: usize,
    /// The optimizer's rate when the run began: the schedule scales it, and it is restored at
    /// the end.
    base_lr: f32,
    /// The dynamic loss scale of mixed precision; `None` in f32.
    scaler: Option<LossScaler>,
    /// The TensorBoard writer, if asked for.
    board: Option<SummaryWriter>,
    /// The figures of every epoch run in this process.
    epochs: Vec<EpochMetrics>,
    /// The running mean loss at every log point.
    loss_log: Vec<LossPoint>,
    /// `(epoch, validation accuracy)` of the best epoch so far (with a validation set).
    best: Option<(usize, f64)>,
    /// Whether patience ran out before the last epoch.
    stopped_early: bool,
    /// Training steps run in this process, and the GPU traffic of their epochs, for the
    /// per-step averages in [`Metrics`].
    total_steps: u64,
    step_counters: Counters,
}
