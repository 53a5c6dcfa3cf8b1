//! Evaluation: accuracy ([`evaluate`], [`evaluate_with`]), loss and accuracy
//! ([`evaluate_loss`]) and predictions ([`predict`], [`predict_confidence`]) over a whole
//! dataset in evaluation mode with no graph, all on one loop that counts on the device and
//! reads back once; and the evaluation `fit` runs after every epoch.

use super::epoch::Trained;
use super::{EpochMetrics, LossFn, Run};
use crate::autograd::no_grad;
use crate::data::DeviceDataset;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::nn::{Module, ModuleExt};
use crate::tensor::Tensor;
use std::time::Instant;

/// Fraction of `data` the model classifies correctly (evaluation mode, no graph recorded;
/// restores training mode). Inputs are fed in the model's dtype ([`ModuleExt::dtype`]), so
/// an f16 model runs f16 kernels end to end.
pub fn evaluate(model: &mut dyn Module, data: &DeviceDataset, batch_size: usize) -> Result<f64> {
    let dtype = model.dtype();
    evaluate_with(model, data, batch_size, |x| x.to_dtype(dtype))
}

/// [`evaluate`] with each input batch passed through `prepare` first (e.g. rounding it to the
/// f16 grid, as the book's `half_float_network.py` does).
pub fn evaluate_with(
    model: &mut dyn Module,
    data: &DeviceDataset,
    batch_size: usize,
    prepare: impl Fn(Tensor) -> Result<Tensor>,
) -> Result<f64> {
    Ok(eval_pass(model, data, batch_size, &prepare, None, None)?.1)
}

/// The class `model` predicts for every example of `data`, in order (evaluation mode, no
/// graph; restores training mode): the argmax of each output row, read back batch by batch.
pub fn predict(
    model: &mut dyn Module,
    data: &DeviceDataset,
    batch_size: usize,
) -> Result<Vec<u32>> {
    Ok(predict_confidence(model, data, batch_size)?
        .into_iter()
        .map(|(class, _)| class)
        .collect())
}

/// [`predict`] with each prediction's softmax probability (how sure the model is): the
/// first largest output of each row and its probability.
pub fn predict_confidence(
    model: &mut dyn Module,
    data: &DeviceDataset,
    batch_size: usize,
) -> Result<Vec<(u32, f32)>> {
    let dtype = model.dtype();
    let mut preds = Vec::with_capacity(data.len());
    eval_pass(
        model,
        data,
        batch_size,
        &|x| x.to_dtype(dtype),
        None,
        Some(&mut preds),
    )?;
    Ok(preds)
}

/// Mean loss and accuracy of `model` on `data` (evaluation mode, no graph; restores training
/// mode). One readback at the end.
pub fn evaluate_loss(
    model: &mut dyn Module,
    loss_fn: &LossFn,
    data: &DeviceDataset,
    batch_size: usize,
) -> Result<(f64, f64)> {
    let dtype = model.dtype();
    eval_pass(
        model,
        data,
        batch_size,
        &|x| x.to_dtype(dtype),
        Some(loss_fn),
        None,
    )
}

/// The evaluation loop behind [`evaluate_with`] and [`evaluate_loss`]: evaluation mode, no
/// graph, accuracy (and with `loss_fn` the mean loss, computed in f32) counted on the device
/// and read back once at the end; training mode is restored even on an error.
fn eval_pass(
    model: &mut dyn Module,
    data: &DeviceDataset,
    batch_size: usize,
    prepare: &dyn Fn(Tensor) -> Result<Tensor>,
    loss_fn: Option<&LossFn>,
    mut preds: Option<&mut Vec<(u32, f32)>>,
) -> Result<(f64, f64)> {
    if data.is_empty() || batch_size == 0 {
        return Err(Error::invalid(
            "evaluate",
            format!("{} examples in batches of {batch_size}", data.len()),
        ));
    }
    let _no_grad = no_grad();
    model.eval();
    let device = data.device();
    let order = data.ordered()?;
    let mut correct = Tensor::zeros([1], DType::U32, &device)?;
    let mut loss_sum = Tensor::zeros([1], DType::F32, &device)?;
    let mut offset = 0;
    let r = (|| -> Result<()> {
        while offset < data.len() {
            let count = batch_size.min(data.len() - offset);
            let (x, t) = data.batch(&order, offset, count)?;
            let out = model.forward(&prepare(x)?)?;
            out.count_correct_into(&t, &mut correct)?;
            if let Some(p) = preds.as_deref_mut() {
                let classes = out.numel() / count;
                let probs = out
                    .reshape([count, classes])?
                    .to_dtype(DType::F32)?
                    .softmax(-1)?
                    .to_vec::<f32>()?;
                p.extend(probs.chunks_exact(classes).map(|row| {
                    let best = row
                        .iter()
                        .enumerate()
                        .fold(0, |b, (i, &v)| if v > row[b] { i } else { b });
                    (best as u32, row[best])
                }));
            }
            if let Some(loss_fn) = loss_fn {
                let loss = loss_fn(&out.to_dtype(DType::F32)?, &t)?;
                loss_sum.axpy_(count as f32, &loss.reshape([1])?)?;
            }
            device.flush()?;
            offset += count;
        }
        Ok(())
    })();
    model.train();
    r?;
    let v = Tensor::read_scalars(&[&loss_sum, &correct])?;
    Ok((v[0] / data.len() as f64, v[1] / data.len() as f64))
}

impl Run<'_> {
    /// Evaluates the model after epoch `epoch` (0-based) on the validation set (loss and
    /// accuracy) and the test set (accuracy), timed apart from training, and puts the
    /// epoch's figures together.
    pub(super) fn evaluate_epoch(
        &mut self,
        epoch: usize,
        trained: Trained,
    ) -> Result<EpochMetrics> {
        let batch_size = self.cfg.eval_batch_size;
        let e0 = Instant::now();
        let validation = match self.val {
            Some(v) => Some(evaluate_loss(self.model, self.loss_fn, v, batch_size)?),
            None => None,
        };
        let test_accuracy = evaluate(self.model, self.test, batch_size)?;
        let eval_seconds = e0.elapsed().as_secs_f64();
        Ok(EpochMetrics {
            epoch: epoch + 1,
            train_loss: trained.train_loss,
            train_accuracy: trained.train_accuracy,
            val_loss: validation.map(|v| v.0),
            val_accuracy: validation.map(|v| v.1),
            test_accuracy,
            images_per_sec: self.train.len() as f64 / trained.seconds,
            seconds: trained.seconds,
            eval_seconds,
        })
    }
}
