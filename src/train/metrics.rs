//! What a run measured: [`EpochMetrics`] per epoch, [`LossPoint`]s of the running loss, and
//! [`Metrics`] for the whole run (its one-line summary and the `--metrics-out` JSON), and
//! how `fit` turns what it tallied into them at the end.

use super::{LrSchedule, Precision, Run, evaluate};
use crate::error::{Error, Result};
use crate::nn::ModuleExt;
use serde::{Deserialize, Serialize};

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

impl Run<'_> {
    /// Ends the run: restores the optimizer's base rate and puts the [`Metrics`] together.
    /// The final test accuracy is the last epoch's; a run with no epoch left to train (resumed
    /// at its last) evaluates the model once instead.
    pub(super) fn finish(self) -> Result<Metrics> {
        self.opt.set_lr(self.base_lr);
        let test_accuracy = match self.epochs.last() {
            Some(m) => m.test_accuracy,
            None => evaluate(self.model, self.test, self.cfg.eval_batch_size)?,
        };
        let (loss_scale, skipped_steps) = match &self.scaler {
            Some(s) => {
                let (scale, skipped) = s.read()?;
                (scale as f64, skipped)
            }
            None => (1.0, 0),
        };
        let per_step = |v: u64| {
            if self.total_steps == 0 {
                0.0
            } else {
                v as f64 / self.total_steps as f64
            }
        };
        Ok(Metrics {
            device: self.device.to_string(),
            test_accuracy,
            images_per_sec: if self.epochs.is_empty() {
                0.0
            } else {
                self.epochs.iter().map(|e| e.images_per_sec).sum::<f64>() / self.epochs.len() as f64
            },
            train_examples: self.train.len(),
            test_examples: self.test.len(),
            batch_size: self.cfg.batch_size,
            parameters: self.model.num_params(),
            submits_per_step: per_step(self.step_counters.submits),
            bytes_read_back_per_step: per_step(self.step_counters.bytes_read_back),
            bytes_uploaded_per_step: per_step(self.step_counters.bytes_uploaded),
            loss_log: self.loss_log,
            precision: self.cfg.precision,
            lr_schedule: self.cfg.lr_schedule,
            loss_scale,
            skipped_steps,
            best_epoch: self.best,
            stopped_early: self.stopped_early,
            epochs: self.epochs,
        })
    }
}
