//! Dropout with a counter-based mask: the same (seed, step) gives the same mask on every
//! device, so CPU and GPU runs of one seed agree step for step. The step counts this layer's
//! training forwards and is saved in checkpoints, so a resumed run draws the masks the
//! uninterrupted one would have.

use super::Module;
use crate::error::{Error, Result};
use crate::ops::DropoutSpec;
use crate::rng::SplitMix64;
use crate::tensor::Tensor;

/// Which dropout formula.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropoutMode {
    /// Kept units are scaled by `1 / (1 - ratio)` in training; evaluation is the identity
    /// (PyTorch's and burn's form).
    Inverted,
    /// The book's form: training multiplies by the 0/1 mask, evaluation by `1 - ratio`.
    Book,
}

/// Drops each unit with probability `ratio` in training.
#[derive(Module)]
pub struct Dropout {
    ratio: f32,
    mode: DropoutMode,
    seed: u64,
    #[module(counter)]
    step: u64,
    train: bool,
}

impl Dropout {
    /// Inverted dropout with drop probability `ratio` in `[0, 1)`, its masks seeded from the
    /// global generator ([`crate::manual_seed`]).
    pub fn new(ratio: f32) -> Result<Dropout> {
        Dropout::with_mode(ratio, DropoutMode::Inverted, crate::rng::next_seed())
    }

    /// Inverted dropout with drop probability `ratio` in `[0, 1)`, its masks seeded by `seed`.
    pub fn with_seed(ratio: f32, seed: u64) -> Result<Dropout> {
        Dropout::with_mode(ratio, DropoutMode::Inverted, seed)
    }

    /// Dropout in the given form.
    pub fn with_mode(ratio: f32, mode: DropoutMode, seed: u64) -> Result<Dropout> {
        if !(0.0..1.0).contains(&ratio) {
            return Err(Error::invalid(
                "Dropout",
                format!("ratio must be in [0, 1), got {ratio}"),
            ));
        }
        Ok(Dropout {
            ratio,
            mode,
            seed,
            step: 0,
            train: true,
        })
    }

    fn spec(&self, step: u64) -> DropoutSpec {
        let scale = match self.mode {
            DropoutMode::Inverted => 1.0 / (1.0 - self.ratio),
            DropoutMode::Book => 1.0,
        };
        let seed =
            SplitMix64::new(self.seed ^ step.wrapping_mul(0xD6E8_FEB8_6659_FD93)).next_u64() as u32;
        DropoutSpec {
            ratio: self.ratio,
            scale,
            seed,
            offset: 0,
        }
    }
}

impl Module for Dropout {
    fn forward(&mut self, x: &Tensor) -> Result<Tensor> {
        if self.train {
            let spec = self.spec(self.step);
            self.step += 1;
            return x.dropout(&spec);
        }
        match self.mode {
            DropoutMode::Inverted => Ok(x.clone()),
            DropoutMode::Book => x.scale(1.0 - self.ratio),
        }
    }

    fn set_training(&mut self, train: bool) {
        self.train = train;
    }

    fn describe(&self) -> String {
        format!("Dropout({}, {:?})", self.ratio, self.mode)
    }
}
