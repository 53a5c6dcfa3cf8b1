//! Dropout with a counter-based mask: the same (seed, step) gives the same mask on every
//! device, so CPU and GPU runs of one seed agree step for step.

use super::{ForwardCtx, Layer, no_forward};
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
pub struct Dropout {
    ratio: f32,
    mode: DropoutMode,
    seed: u64,
    mask: Option<Tensor>,
    train: bool,
}

impl Dropout {
    /// Inverted dropout with drop probability `ratio` in `[0, 1)`.
    pub fn new(ratio: f32, seed: u64) -> Result<Dropout> {
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
            mask: None,
            train: false,
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

impl Layer for Dropout {
    fn kind(&self) -> &'static str {
        "Dropout"
    }

    fn forward(&mut self, x: &Tensor, ctx: &ForwardCtx) -> Result<Tensor> {
        self.train = ctx.train;
        if ctx.train {
            let mask = Tensor::dropout_mask_as(
                x.shape().clone(),
                x.dtype(),
                &self.spec(ctx.step),
                &x.device(),
            )?;
            let y = x.mul(&mask)?;
            self.mask = Some(mask);
            return Ok(y);
        }
        self.mask = None;
        match self.mode {
            DropoutMode::Inverted => Ok(x.clone()),
            DropoutMode::Book => x.scale(1.0 - self.ratio),
        }
    }

    fn backward(&mut self, dout: &Tensor) -> Result<Tensor> {
        if !self.train {
            return Err(no_forward("Dropout"));
        }
        dout.mul(self.mask.as_ref().ok_or_else(|| no_forward("Dropout"))?)
    }

    fn set_name(&mut self, _: &str) {}

    fn describe(&self) -> String {
        format!("Dropout({}, {:?})", self.ratio, self.mode)
    }
}
