//! Losses are functions of tensors: their backward comes from autograd like any op's.

use crate::error::Result;
use crate::tensor::Tensor;

/// Mean softmax cross-entropy of `logits` `[N, classes]` against u32 class indices `labels`
/// `[N]`: the book's `SoftmaxWithLoss` (without its 1e-7 guard: the fused kernel computes
/// `logsumexp(x) - x[label]` exactly). Its backward is the fused `(softmax - onehot) / N`.
pub fn cross_entropy(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    Ok(logits.softmax_cross_entropy(labels)?.0)
}

/// Mean squared error `mean((pred - target)²)` over all elements (PyTorch's `mse_loss`).
pub fn mse_loss(pred: &Tensor, target: &Tensor) -> Result<Tensor> {
    let d = pred.sub(target)?;
    d.mul(&d)?.mean()
}

/// Binary cross-entropy of `logits` against `targets` in [0, 1], averaged over all elements
/// (PyTorch's `binary_cross_entropy_with_logits`): `softplus(x) - x·t`, which is
/// `-t·ln σ(x) - (1 - t)·ln(1 - σ(x))` without its overflow; the gradient is `(σ(x) - t) / N`.
/// A GAN's discriminator and generator losses.
pub fn bce_with_logits(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    logits.softplus()?.sub(&logits.mul(targets)?)?.mean()
}
