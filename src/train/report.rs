//! What a run shows as it goes: the indicatif progress bar of an epoch (a silent stand-in
//! without the `cli` feature), and after each epoch its printed lines (with
//! `TrainConfig::verbose`) and its TensorBoard scalars. The lines within an epoch are
//! written at its log points, in `epoch.rs`.

use super::{EpochMetrics, Run, TrainConfig};
use crate::error::Result;
#[cfg(feature = "cli")]
pub(super) use indicatif::ProgressBar;
#[cfg(feature = "cli")]
use indicatif::ProgressStyle;

impl Run<'_> {
    /// Reports epoch `m` (1-based `m.epoch`): when verbose, the loss scale (mixed precision)
    /// and the epoch's line; with TensorBoard, its scalars at the epoch's last global step,
    /// the rate being the one its last step ran at.
    pub(super) fn report_epoch(&mut self, m: &EpochMetrics) -> Result<()> {
        let cfg = self.cfg;
        let validation = m.val_loss.zip(m.val_accuracy);
        if let (Some(s), true) = (&self.scaler, cfg.verbose) {
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
                self.test.len(),
                m.images_per_sec,
                m.seconds,
                m.eval_seconds
            );
        }
        if let Some(b) = &mut self.board {
            let at = (m.epoch * self.steps_per_epoch) as i64;
            let mut scalars = vec![
                ("train/loss", m.train_loss),
                ("train/accuracy", m.train_accuracy),
                ("test/accuracy", m.test_accuracy),
                ("lr", self.opt.lr() as f64),
            ];
            if let Some((l, a)) = validation {
                scalars.extend([("val/loss", l), ("val/accuracy", a)]);
            }
            for (tag, v) in scalars {
                b.add_scalar(tag, v as f32, at)?;
            }
        }
        Ok(())
    }
}

/// Without the `cli` feature there is no progress bar: this stands in for indicatif's.
#[cfg(not(feature = "cli"))]
pub(super) struct ProgressBar;

#[cfg(not(feature = "cli"))]
impl ProgressBar {
    pub(super) fn set_position(&self, _: u64) {}
    pub(super) fn set_message(&self, _: String) {}
    pub(super) fn finish_and_clear(&self) {}
}

#[cfg(not(feature = "cli"))]
pub(super) fn progress_bar(_: &TrainConfig, _: usize, _: usize, _: usize) -> ProgressBar {
    ProgressBar
}

/// The bar of epoch `epoch` of `epochs` over its `len` steps on stderr; hidden unless
/// `cfg.progress` (indicatif also hides it when stderr is not a terminal).
#[cfg(feature = "cli")]
pub(super) fn progress_bar(
    cfg: &TrainConfig,
    len: usize,
    epoch: usize,
    epochs: usize,
) -> ProgressBar {
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
