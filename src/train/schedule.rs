//! The learning rate over a run: [`LrSchedule`] (constant, cosine, flat-cosine, step) and
//! the warmup ramp on top of it that [`fit`](super::fit) applies before every step.

use super::TrainConfig;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

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

/// The rate `fit` trains 0-based `global_step` at: the schedule's rate from `base` over all
/// `cfg.epochs`, times the linear warmup ramp `(global_step + 1) / warmup_steps` during the
/// first `cfg.warmup_epochs` (so the first step is not at 0, and the ramp ends at the base).
pub(super) fn scheduled_lr(
    cfg: &TrainConfig,
    base: f32,
    global_step: u64,
    steps_per_epoch: usize,
) -> f32 {
    let warmup = (cfg.warmup_epochs * steps_per_epoch) as u64;
    let ramp = if global_step < warmup {
        (global_step + 1) as f32 / warmup as f32
    } else {
        1.0
    };
    ramp * cfg
        .lr_schedule
        .lr(base, global_step, steps_per_epoch as u64, cfg.epochs as u64)
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
