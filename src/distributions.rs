//! Probability distributions over a network's outputs, as `torch.distributions`: what a
//! policy network's logits become in reinforcement learning (sample an action, its
//! log-probability for the policy gradient, the entropy bonus).
//!
//! ```
//! use wgnn::distributions::Categorical;
//! # fn main() -> wgnn::Result<()> {
//! let dev = wgnn::Device::cpu();
//! let logits = wgnn::Tensor::from_slice(&[0.0f32, 1.0, 2.0, 0.0, 0.0, 0.0], [2, 3], &dev)?;
//! let pi = Categorical::new(&logits)?;
//! let action = pi.sample()?; // u32 [2], drawn on the device
//! let log_prob = pi.log_prob(&action)?; // [2], differentiable in the logits
//! assert_eq!(log_prob.dims(), [2]);
//! assert!((pi.entropy()?.to_vec::<f32>()?[1] - 3f32.ln()).abs() < 1e-6);
//! # Ok(())
//! # }
//! ```

use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// A categorical distribution over the last dimension of `[.., K]` scores (PyTorch's
/// `Categorical(logits=…)` or `Categorical(probs=…)`), one distribution per row.
#[derive(Clone, Debug)]
pub struct Categorical {
    /// Normalised log-probabilities (`log_softmax` of the logits), `[.., K]`.
    logits: Tensor,
}

impl Categorical {
    /// From unnormalised log-probabilities `[.., K]` (a policy network's outputs).
    pub fn new(logits: &Tensor) -> Result<Categorical> {
        Categorical::check("Categorical::new", logits)?;
        Ok(Categorical {
            logits: logits.log_softmax(-1)?,
        })
    }

    /// From probabilities `[.., K]`, each row ≥ 0 with a positive sum (normalised here).
    pub fn from_probs(probs: &Tensor) -> Result<Categorical> {
        Categorical::check("Categorical::from_probs", probs)?;
        let normalised = probs.div(&probs.sum_dim(&[-1], true)?)?;
        // ln 0 = −∞ would make 0·ln 0 a NaN in the entropy: clamp to the smallest normal.
        Categorical::new(&normalised.clamp_min(f32::MIN_POSITIVE)?.log()?)
    }

    fn check(op: &'static str, t: &Tensor) -> Result<()> {
        match t.dims().last() {
            Some(&k) if k >= 1 => Ok(()),
            _ => Err(Error::invalid(
                op,
                format!("scores {}: need a last dimension of categories", t.shape()),
            )),
        }
    }

    /// The normalised log-probabilities `[.., K]`.
    pub fn logits(&self) -> &Tensor {
        &self.logits
    }

    /// The probabilities `[.., K]`.
    pub fn probs(&self) -> Result<Tensor> {
        self.logits.exp()
    }

    /// One draw per row → u32 `[..]`, on the scores' device (a GPU draws them in one
    /// dispatch), seeded from the default generator ([`crate::manual_seed`]).
    pub fn sample(&self) -> Result<Tensor> {
        let s = crate::rng::next_seed();
        self.sample_seeded((s ^ (s >> 32)) as u32)
    }

    /// [`Categorical::sample`] with an explicit seed: the same draws for the same seed.
    pub fn sample_seeded(&self, seed: u32) -> Result<Tensor> {
        let _guard = crate::autograd::no_grad();
        self.logits.sample_categorical(seed, 0)
    }

    /// `ln p(value)` for u32 categories `value` `[..]` → `[..]` (differentiable in the scores).
    pub fn log_prob(&self, value: &Tensor) -> Result<Tensor> {
        let batch = &self.logits.dims()[..self.logits.dims().len() - 1];
        if value.dims() != batch {
            return Err(Error::invalid(
                "Categorical::log_prob",
                format!(
                    "values {} for distributions of shape {:?}",
                    value.shape(),
                    batch
                ),
            ));
        }
        self.logits.gather(-1, &value.unsqueeze(-1)?)?.squeeze(-1)
    }

    /// The entropy `−Σ p ln p` of each row → `[..]` (differentiable in the scores).
    pub fn entropy(&self) -> Result<Tensor> {
        self.probs()?
            .mul(&self.logits)?
            .sum_dim(&[-1], false)?
            .neg()
    }
}
