//! The steps a hand-written loop is made of: [`train_step`] (f32), [`train_step_mixed`]
//! (f16 compute, f32 master weights, loss scaling) and [`train_epoch`], the book's plain
//! epoch of full batches. [`fit`](super::fit) runs the same steps with its bookkeeping.

use super::LossFn;
use crate::data::DeviceDataset;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::nn::{Module, ModuleExt};
use crate::optim::{LossScaler, Optimizer};
use crate::tensor::Tensor;

/// One optimisation step on a batch: zero the gradients, forward, loss, backward, update.
/// Returns `(loss [1], output)`, still on the device.
pub fn train_step(
    model: &mut dyn Module,
    loss_fn: &LossFn,
    opt: &mut Optimizer,
    x: &Tensor,
    t: &Tensor,
) -> Result<(Tensor, Tensor)> {
    model.zero_grad();
    let out = model.forward(x)?;
    let loss = loss_fn(&out, t)?;
    loss.backward()?;
    opt.step(model.named_parameters())?;
    Ok((loss.detach(), out.detach()))
}

/// A mixed-precision step (PyTorch's autocast + GradScaler recipe): the input goes in as f16
/// so every layer computes in f16 on f16 casts of its f32 master weights (the casts are
/// recorded, so the gradients come back f32); the loss is computed in f32 from the f32 cast
/// of the output, and backpropagated from the scaler's scale instead of 1; then the guarded
/// update ([`Optimizer::step_scaled`]). Returns `(f32 loss [1], output)`.
pub fn train_step_mixed(
    model: &mut dyn Module,
    loss_fn: &LossFn,
    opt: &mut Optimizer,
    scaler: &mut LossScaler,
    x: &Tensor,
    t: &Tensor,
) -> Result<(Tensor, Tensor)> {
    model.zero_grad();
    let out = model.forward(&x.to_dtype(DType::F16)?)?;
    let loss = loss_fn(&out.to_dtype(DType::F32)?, t)?;
    let mut seed = Tensor::full(loss.shape().clone(), 1.0, &loss.device())?;
    scaler.scale_(&mut seed)?;
    loss.backward_with(&seed)?;
    opt.step_scaled(model.named_parameters(), scaler)?;
    Ok((loss.detach(), out.detach()))
}

/// One epoch of full batches (a last partial batch is dropped, as the book's loops do) in
/// the seeded shuffled order of `epoch`, one [`train_step`] each; nothing is read back.
pub fn train_epoch(
    model: &mut dyn Module,
    loss_fn: &LossFn,
    opt: &mut Optimizer,
    data: &DeviceDataset,
    batch_size: usize,
    seed: u64,
    epoch: usize,
) -> Result<()> {
    if batch_size == 0 || batch_size > data.len() {
        return Err(Error::invalid(
            "train_epoch",
            format!("batch of {batch_size} from {} examples", data.len()),
        ));
    }
    let order = data.shuffled(seed, epoch)?;
    for offset in (0..=data.len() - batch_size).step_by(batch_size) {
        let (x, t) = data.batch(&order, offset, batch_size)?;
        train_step(model, loss_fn, opt, &x, &t)?;
    }
    Ok(())
}
