//! Softmax + cross-entropy against class indices, as the book's `SoftmaxWithLoss`.

use super::no_forward;
use crate::error::Result;
use crate::tensor::Tensor;

/// The loss layer: `forward` gives the mean loss `[1]`, `backward` `(softmax - onehot) / N`.
#[derive(Default)]
pub struct SoftmaxWithLoss {
    cache: Option<(Tensor, Tensor)>,
}

impl SoftmaxWithLoss {
    /// A loss layer.
    pub fn new() -> SoftmaxWithLoss {
        SoftmaxWithLoss::default()
    }

    /// Mean cross-entropy of `logits` `[N, classes]` against u32 `labels` `[N]` (on the device).
    pub fn forward(&mut self, logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
        let (loss, probs) = logits.softmax_cross_entropy(labels)?;
        self.cache = Some((probs, labels.clone()));
        Ok(loss)
    }

    /// Gradient of the loss scaled by `dout` (1 normally; the loss scale in mixed precision).
    pub fn backward(&mut self, dout: f32) -> Result<Tensor> {
        let (probs, labels) = self
            .cache
            .as_ref()
            .ok_or_else(|| no_forward("SoftmaxWithLoss"))?;
        probs.softmax_cross_entropy_backward(labels, dout)
    }

    /// Probabilities of the last forward.
    pub fn probs(&self) -> Option<&Tensor> {
        self.cache.as_ref().map(|c| &c.0)
    }
}
