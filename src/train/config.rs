//! What a run is asked to do: [`TrainConfig`] (epochs, batches, seeds, output, checkpoints,
//! precision, schedule, augmentation, early stopping) and [`Precision`], the arithmetic it
//! trains in. The learning-rate schedule itself lives in `schedule.rs`.

use super::LrSchedule;
use crate::device::Device;
use crate::dtype::DType;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The arithmetic of training.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// f32 everywhere.
    F32,
    /// f16 activations and gradients, f32 master weights and optimizer state, dynamic loss
    /// scaling ([`LossScaler`](crate::optim::LossScaler)).
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
    /// [`fit`](super::fit) gets no output unless it asks.
    pub verbose: bool,
    /// Write `epoch-N.safetensors` and `last.safetensors` here after every epoch.
    pub checkpoint_dir: Option<PathBuf>,
    /// Continue from this checkpoint (its run: `checkpoint_dir` may hold that run's
    /// checkpoints, and no other run's).
    pub resume: Option<PathBuf>,
    /// Resume even from a checkpoint with NaN or infinite values (refused by default).
    pub allow_non_finite: bool,
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
            allow_non_finite: false,
            precision: Precision::F32,
            lr_schedule: LrSchedule::Constant,
            augment: None,
            tensorboard: None,
            warmup_epochs: 0,
            patience: None,
        }
    }
}
