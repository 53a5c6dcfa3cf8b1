//! Losses are functions of tensors: their backward comes from autograd like any op's.

use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// How a loss over many elements is reduced (PyTorch's `reduction=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Reduction {
    /// The mean over every element (PyTorch's default).
    #[default]
    Mean,
    /// The sum.
    Sum,
    /// No reduction: one loss per element.
    None,
}

/// Mean softmax cross-entropy of `logits` against u32 class indices `labels`, with the class
/// dim 1 as PyTorch: `[N, C]` against `[N]`, or `[N, C, d1, ..]` against `[N, d1, ..]`. For
/// `[N, C]` it is the book's `SoftmaxWithLoss` (without its 1e-7 guard: the fused kernel
/// computes `logsumexp(x) - x[label]` exactly), whose backward is the fused
/// `(softmax - onehot) / N`. Returns a 0-d tensor.
pub fn cross_entropy(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    cross_entropy_with(logits, labels, Reduction::Mean)
}

/// [`cross_entropy`] with a chosen [`Reduction`].
pub fn cross_entropy_with(
    logits: &Tensor,
    labels: &Tensor,
    reduction: Reduction,
) -> Result<Tensor> {
    if reduction == Reduction::None {
        return nll_loss_with(&logits.log_softmax(1)?, labels, Reduction::None);
    }
    let (rows, count) = class_rows(logits, labels)?;
    let mean = rows
        .softmax_cross_entropy(&labels.reshape([count])?)?
        .0
        .reshape([0usize; 0])?;
    match reduction {
        Reduction::Sum => mean.mul_scalar(count as f32),
        _ => Ok(mean),
    }
}

/// `logits` with the class dim moved last and flattened to `[count, C]`, and `count`.
fn class_rows(logits: &Tensor, labels: &Tensor) -> Result<(Tensor, usize)> {
    let d = logits.dims();
    if d.len() < 2 {
        return Err(Error::invalid(
            "cross_entropy",
            format!(
                "logits need a batch and a class dim, got {}",
                logits.shape()
            ),
        ));
    }
    let mut want: Vec<usize> = d.to_vec();
    want.remove(1);
    if labels.dims() != want.as_slice() {
        return Err(Error::shapes(
            "cross_entropy",
            logits.shape(),
            labels.shape(),
            "labels must have the logits' shape without the class dim 1",
        ));
    }
    let c = d[1];
    let count = logits.numel() / c.max(1);
    let rows = if d.len() == 2 {
        logits.clone()
    } else {
        logits.movedim(1, -1)?.reshape([count, c])?
    };
    Ok((rows, count))
}

/// Negative log-likelihood of log-probabilities `log_probs` (`[N, C, ..]`, class dim 1) at
/// the u32 `labels` (`[N, ..]`), averaged (PyTorch's `nll_loss`).
pub fn nll_loss(log_probs: &Tensor, labels: &Tensor) -> Result<Tensor> {
    nll_loss_with(log_probs, labels, Reduction::Mean)
}

/// [`nll_loss`] with a chosen [`Reduction`].
pub fn nll_loss_with(log_probs: &Tensor, labels: &Tensor, reduction: Reduction) -> Result<Tensor> {
    let (rows, count) = class_rows(log_probs, labels)?;
    let picked = rows.gather(1, &labels.reshape([count, 1])?)?.neg()?;
    match reduction {
        Reduction::Mean => picked.mean(),
        Reduction::Sum => picked.sum(),
        Reduction::None => picked.reshape(labels.shape().clone()),
    }
}

/// Mean squared error `mean((pred - target)²)` over all elements (PyTorch's `mse_loss`).
pub fn mse_loss(pred: &Tensor, target: &Tensor) -> Result<Tensor> {
    let d = pred.sub(target)?;
    d.mul(&d)?.mean()
}

/// Smooth L1 (Huber) loss averaged over all elements (PyTorch's `smooth_l1_loss` with `beta`):
/// `0.5·d²/β` where `|d| < β`, else `|d| − 0.5·β`, with `d = pred − target` (broadcast). An
/// actor-critic's value loss: quadratic near the target, linear far from it.
pub fn smooth_l1_loss(pred: &Tensor, target: &Tensor, beta: f32) -> Result<Tensor> {
    if !(beta.is_finite() && beta > 0.0) {
        return Err(Error::invalid(
            "smooth_l1_loss",
            format!("beta must be finite and > 0, got {beta}"),
        ));
    }
    let d = pred.sub(target)?;
    let ad = d.abs()?;
    let quadratic = d.mul(&d)?.mul_scalar(0.5 / beta)?;
    let linear = ad.add_scalar(-0.5 * beta)?;
    let near = ad.lt(&Tensor::full_like(&ad, beta)?)?;
    Tensor::where_(&near, &quadratic, &linear)?.mean()
}

/// Binary cross-entropy of `logits` against `targets` in [0, 1], averaged over all elements
/// (PyTorch's `binary_cross_entropy_with_logits`): `softplus(x) - x·t`, which is
/// `-t·ln σ(x) - (1 - t)·ln(1 - σ(x))` without its overflow; the gradient is `(σ(x) - t) / N`.
/// A GAN's discriminator and generator losses.
pub fn bce_with_logits(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    logits.softplus()?.sub(&logits.mul(targets)?)?.mean()
}
