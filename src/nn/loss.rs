//! Losses are functions of tensors: their backward comes from autograd like any op's.

use crate::error::Result;
use crate::tensor::Tensor;

/// Mean softmax cross-entropy of `logits` `[N, classes]` against u32 class indices `labels`
/// `[N]`: the book's `SoftmaxWithLoss` (without its 1e-7 guard: the fused kernel computes
/// `logsumexp(x) - x[label]` exactly). Its backward is the fused `(softmax - onehot) / N`.
pub fn cross_entropy(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    Ok(logits.softmax_cross_entropy(labels)?.0)
}
