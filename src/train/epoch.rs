//! One training epoch of [`fit_validated`](super::fit_validated): the seeded shuffle,
//! batches (augmented on the device when asked), the scheduled rate, the step (f32 or
//! mixed), and the loss and the correct count summed on the device.
//!
//! Nothing is read back between log points: on a GPU each step is one submit, and a log
//! point's readback of the two sums (4 bytes each) rides on its step's submit. The log point
//! feeds the progress bar, the loss log, TensorBoard's running loss and the verbose lines.

use super::schedule::scheduled_lr;
use super::{LossPoint, Run, report::ProgressBar, train_step, train_step_mixed};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::gpu::Counters;
use crate::tensor::Tensor;
use std::time::Instant;

/// What a training epoch measured, read back once at its end.
pub(super) struct Trained {
    /// Mean loss over the epoch's steps.
    pub train_loss: f64,
    /// Fraction of the training examples classified correctly.
    pub train_accuracy: f64,
    /// Seconds of training (synchronised at both ends).
    pub seconds: f64,
}

/// The device-side sums of an epoch so far, and how far it got.
struct Tally {
    /// Sum of the steps' losses, f32 `[1]`.
    loss_sum: Tensor,
    /// Examples classified correctly, u32 `[1]`.
    correct: Tensor,
    /// Examples trained on.
    offset: usize,
    /// When the epoch's training began.
    t0: Instant,
}

impl Run<'_> {
    /// Trains epoch `epoch` (0-based): every batch of the epoch's shuffle, the last one
    /// partial, one step each at the scheduled rate. Counts the epoch's steps and GPU traffic
    /// into the run's per-step figures. (The plain [`train_epoch`](super::train_epoch) is
    /// this without the partial batch, the schedule and the bookkeeping.)
    pub(super) fn fit_epoch(&mut self, epoch: usize) -> Result<Trained> {
        let (cfg, train, steps) = (self.cfg, self.train, self.steps_per_epoch);
        let bar = super::report::progress_bar(cfg, steps, epoch + 1, cfg.epochs);
        let order = train.shuffled(cfg.seed, epoch)?;
        let loss_sum = Tensor::zeros([1], DType::F32, &self.device)?;
        let correct = Tensor::zeros([1], DType::U32, &self.device)?;
        // Time and count the epoch from an idle device.
        self.device.sync()?;
        let before = self.device.counters();
        let mut tally = Tally {
            loss_sum,
            correct,
            offset: 0,
            t0: Instant::now(),
        };
        for step in 0..steps {
            let count = cfg.batch_size.min(train.len() - tally.offset);
            let (x, t) = train.batch(&order, tally.offset, count)?;
            let x = match &cfg.augment {
                Some(a) => x.augment(&a.for_batch(cfg.seed, epoch, tally.offset))?,
                None => x,
            };
            let global_step = (epoch * steps + step) as u64;
            self.opt
                .set_lr(scheduled_lr(cfg, self.base_lr, global_step, steps));
            self.step(&x, &t, count, &mut tally)?;
            if (step + 1) % cfg.log_every.max(1) != 0 && step + 1 != steps {
                self.device.flush()?; // the step's one submit
            } else {
                self.log_point(epoch, step, &tally, &bar)?;
            }
        }
        self.device.sync()?;
        let seconds = tally.t0.elapsed().as_secs_f64();
        self.count_traffic(&self.device.counters().since(&before));
        bar.finish_and_clear();
        let v = Tensor::read_scalars(&[&tally.loss_sum, &tally.correct])?;
        Ok(Trained {
            train_loss: v[0] / steps as f64,
            train_accuracy: v[1] / train.len() as f64,
            seconds,
        })
    }

    /// One step on the batch `(x, t)` of `count` examples, its loss and (for a classifier's
    /// `[count, classes]` output) its correct count added to the tally on the device.
    fn step(&mut self, x: &Tensor, t: &Tensor, count: usize, tally: &mut Tally) -> Result<()> {
        let (loss, out) = match &mut self.scaler {
            Some(s) => train_step_mixed(self.model, self.loss_fn, self.opt, s, x, t)?,
            None => train_step(self.model, self.loss_fn, self.opt, x, t)?,
        };
        tally.loss_sum.axpy_(1.0, &loss.reshape([1])?)?;
        if out.dims().len() == 2 && out.dims()[0] == count {
            out.count_correct_into(t, &mut tally.correct)?;
        }
        tally.offset += count;
        Ok(())
    }

    /// A log point after 0-based `step`: reads the two sums back (the readback submits the
    /// step and the two 4-byte copies together: one submit), stops a diverged run, and
    /// reports the running mean loss, accuracy and throughput.
    fn log_point(
        &mut self,
        epoch: usize,
        step: usize,
        tally: &Tally,
        bar: &ProgressBar,
    ) -> Result<()> {
        let v = Tensor::read_scalars(&[&tally.loss_sum, &tally.correct])?;
        let mean = v[0] / (step + 1) as f64;
        let train_acc = v[1] / tally.offset as f64;
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
        let ips = tally.offset as f64 / tally.t0.elapsed().as_secs_f64();
        bar.set_position(step as u64 + 1);
        bar.set_message(format!(
            "loss {mean:.4} | train acc {:.2}% | {ips:.0} img/s",
            100.0 * train_acc
        ));
        self.loss_log.push(LossPoint {
            epoch: epoch + 1,
            step: step + 1,
            mean_loss: mean,
        });
        if let Some(b) = &mut self.board {
            let at = (epoch * self.steps_per_epoch + step + 1) as i64;
            b.add_scalar("train/loss_running", mean as f32, at)?;
        }
        if self.cfg.verbose && !self.cfg.progress {
            println!(
                "  epoch {} step {:>5}/{}: mean loss {mean:.6}, train acc {:.2}%, {ips:.0} img/s",
                epoch + 1,
                step + 1,
                self.steps_per_epoch,
                100.0 * train_acc
            );
        }
        Ok(())
    }

    /// Adds an epoch's GPU traffic and steps to the run's totals (zeros on the CPU).
    fn count_traffic(&mut self, c: &Counters) {
        self.step_counters.submits += c.submits;
        self.step_counters.bytes_read_back += c.bytes_read_back;
        self.step_counters.bytes_uploaded += c.bytes_uploaded;
        self.total_steps += self.steps_per_epoch as u64;
    }
}
