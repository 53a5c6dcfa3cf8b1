//! The best epoch and what hangs on it: [`fit_validated`](super::fit_validated) keeps the
//! epoch with the best validation accuracy, writes each epoch's checkpoints (`epoch-N` and
//! `last`, and `best` when the epoch is the new best), and stops early once
//! `TrainConfig::patience` epochs have passed without beating it.

use super::{EpochMetrics, Run, checkpoint};
use crate::error::Result;

impl Run<'_> {
    /// Makes epoch `m` the best if its validation accuracy beats the best so far (strictly,
    /// so a tie keeps the earlier epoch); returns whether it did. Without a validation set
    /// no epoch is ever the best.
    pub(super) fn note_best(&mut self, m: &EpochMetrics) -> bool {
        let improved = match (m.val_accuracy, self.best) {
            (Some(a), Some((_, b))) => a > b,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if improved {
            self.best = m.val_accuracy.map(|a| (m.epoch, a));
        }
        improved
    }

    /// With `TrainConfig::checkpoint_dir`, saves the model and optimizer after epoch `epoch`
    /// (0-based) as `epoch-N.safetensors` and `last.safetensors`, and as `best.safetensors`
    /// too when the epoch `improved` on the best.
    pub(super) fn save_checkpoints(&mut self, epoch: usize, improved: bool) -> Result<()> {
        let Some(dir) = &self.cfg.checkpoint_dir else {
            return Ok(());
        };
        let mut names = vec![
            format!("epoch-{}.safetensors", epoch + 1),
            "last.safetensors".to_string(),
        ];
        if improved {
            names.push("best.safetensors".to_string());
        }
        for name in names {
            checkpoint::save_in_run(
                &dir.join(name),
                self.model,
                self.opt,
                epoch + 1,
                &self.run_id,
            )?;
        }
        Ok(())
    }

    /// Whether the run should stop after epoch `epoch` (0-based) because the best epoch is
    /// `patience` or more epochs behind and epochs remain (saying so when verbose). Never
    /// without `TrainConfig::patience`.
    pub(super) fn patience_ran_out(&self, epoch: usize) -> bool {
        let (Some(p), Some((b, acc))) = (self.cfg.patience, self.best) else {
            return false;
        };
        if epoch + 1 - b < p || epoch + 1 >= self.cfg.epochs {
            return false;
        }
        if self.cfg.verbose {
            println!(
                "early stop after epoch {}: validation accuracy {:.2}% at epoch {b} not bettered in {p} epochs",
                epoch + 1,
                100.0 * acc
            );
        }
        true
    }
}
