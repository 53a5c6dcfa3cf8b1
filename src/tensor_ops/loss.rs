//! The fused softmax-cross-entropy (the book's `SoftmaxWithLoss`), its backward, the
//! last-dim softmax kernel behind `softmax(dim)`, and the accuracy counts of evaluation.

use super::*;

impl Tensor {
    /// Softmax over the last dimension, numerically stable (the row max is subtracted).
    pub(crate) fn softmax_last(&self) -> Result<Tensor> {
        const OP: &str = "softmax";
        want_float(OP, self, self.dtype)?;
        let (rows, cols) = rows_cols(OP, self)?;
        let dt = self.dtype;
        let out = backend!(OP, dt, [self => x], |be| {
            let mut out = be.alloc(rows * cols, dt, OP)?;
            be.softmax(x, &mut out, rows, cols)?;
            Ok(Tensor::from_parts(self.shape.clone(), dt, out.into()))
        })?;
        let y = out.detach();
        Ok(record(out, OP, &[self], move |g| {
            Ok(vec![Some(g.softmax_backward(&y)?)])
        }))
    }

    /// Softmax backward: `self` is dy, `y` the forward output; `dx = y * (dy - Σ dy·y)` per row.
    pub(crate) fn softmax_backward(&self, y: &Tensor) -> Result<Tensor> {
        const OP: &str = "softmax_backward";
        want_float(OP, self, self.dtype)?;
        want_float(OP, y, self.dtype)?;
        same_shape(OP, self, y)?;
        let (rows, cols) = rows_cols(OP, self)?;
        let dt = self.dtype;
        backend!(OP, dt, [y => yb, self => dy], |be| {
            let mut dx = be.alloc(rows * cols, dt, OP)?;
            be.softmax_bwd(yb, dy, &mut dx, rows, cols)?;
            Ok(Tensor::from_parts(self.shape.clone(), dt, dx.into()))
        })
    }

    /// Softmax + cross-entropy against class indices (`labels`: u32 `[rows]`).
    /// Returns `(mean loss [1], probabilities)`; the loss per row is `logsumexp(x) - x[label]`,
    /// the exact form of the book's `-log(softmax(x)[t])` without its 1e-7 guard.
    /// On a GPU a label ≥ the class count gives a NaN loss, and the next readback (the
    /// loss's, or any other) is an error naming the label and its row: checking it here
    /// would cost a synchronisation per call.
    pub(crate) fn softmax_cross_entropy(&self, labels: &Tensor) -> Result<(Tensor, Tensor)> {
        const OP: &str = "softmax_cross_entropy";
        want_float(OP, self, self.dtype)?;
        let (rows, cols) = labels_for(OP, self, labels)?;
        if rows == 0 {
            return Err(Error::invalid(
                OP,
                format!(
                    "logits {} have no rows: the mean loss of an empty batch is undefined",
                    self.shape
                ),
            ));
        }
        let dt = self.dtype;
        let (loss, probs) = backend!(OP, dt, [self => x, labels => t], |be| {
            let mut probs = be.alloc(rows * cols, dt, OP)?;
            let mut row_loss = be.alloc(rows, dt, OP)?;
            be.softmax_ce(x, t, &mut probs, &mut row_loss, rows, cols)?;
            let mut loss = be.alloc(1, dt, OP)?;
            be.sum_cols(&row_loss, &mut loss, 1, rows, 1.0 / rows as f32)?;
            Ok((
                Tensor::from_parts(Shape::new([1]), dt, loss.into()),
                Tensor::from_parts(self.shape.clone(), dt, probs.into()),
            ))
        })?;
        // The fused rule: dlogits = (probs - onehot) / rows, times the upstream [1] gradient.
        let (p, t) = (probs.clone(), labels.detach());
        let loss = record(loss, OP, &[self], move |g| {
            Ok(vec![Some(p.softmax_ce_backward_parts(&t, Some(g), 1.0)?)])
        });
        Ok((loss, probs))
    }

    /// Gradient of the mean softmax-CE loss: `self` is the probabilities from the forward,
    /// `dx = (probs - onehot(labels)) * dout / rows`.
    pub(crate) fn softmax_cross_entropy_backward(
        &self,
        labels: &Tensor,
        dout: f32,
    ) -> Result<Tensor> {
        self.softmax_ce_backward_parts(labels, None, dout)
    }

    /// `(probs - onehot) · dout / rows`, times the one-element tensor `g` when given.
    fn softmax_ce_backward_parts(
        &self,
        labels: &Tensor,
        g: Option<&Tensor>,
        dout: f32,
    ) -> Result<Tensor> {
        const OP: &str = "softmax_cross_entropy_backward";
        want_float(OP, self, self.dtype)?;
        let (rows, cols) = labels_for(OP, self, labels)?;
        let dt = self.dtype;
        match g {
            Some(g) => {
                if g.numel() != 1 || g.dtype != dt {
                    return Err(Error::invalid(
                        OP,
                        format!("the loss gradient is {} {}, not one {dt}", g.dtype, g.shape),
                    ));
                }
                backend!(OP, dt, [self => p, labels => t, g => gb], |be| {
                    let mut dx = be.alloc(rows * cols, dt, OP)?;
                    be.softmax_ce_bwd(p, t, Some(gb), &mut dx, rows, cols, dout / rows as f32)?;
                    Ok(Tensor::from_parts(self.shape.clone(), dt, dx.into()))
                })
            }
            None => backend!(OP, dt, [self => p, labels => t], |be| {
                let mut dx = be.alloc(rows * cols, dt, OP)?;
                be.softmax_ce_bwd(p, t, None, &mut dx, rows, cols, dout / rows as f32)?;
                Ok(Tensor::from_parts(self.shape.clone(), dt, dx.into()))
            }),
        }
    }

    /// Index of the largest element of each row (first wins) → u32 `[rows]`.
    pub(crate) fn argmax_rows(&self) -> Result<Tensor> {
        const OP: &str = "argmax_rows";
        want_float(OP, self, self.dtype)?;
        let (rows, cols) = rows_cols(OP, self)?;
        let dt = self.dtype;
        backend!(OP, dt, [self => x], |be| {
            let mut out = be.alloc(rows, DType::U32, OP)?;
            be.argmax_rows(x, &mut out, rows, cols)?;
            Ok(Tensor::from_parts(Shape::new([rows]), DType::U32, out.into()))
        })
    }

    /// How many rows' argmax equals the label → u32 `[1]` (accuracy without reading scores back).
    pub(crate) fn count_correct(&self, labels: &Tensor) -> Result<Tensor> {
        const OP: &str = "count_correct";
        want_float(OP, self, self.dtype)?;
        let (rows, cols) = labels_for(OP, self, labels)?;
        let dt = self.dtype;
        backend!(OP, dt, [self => x, labels => t], |be| {
            let mut out = be.alloc(1, DType::U32, OP)?;
            be.count_correct(x, t, &mut out, rows, cols, false)?;
            Ok(Tensor::from_parts(Shape::new([1]), DType::U32, out.into()))
        })
    }

    /// Adds the number of correct rows to `acc` (u32 `[1]`) on the device.
    pub(crate) fn count_correct_into(&self, labels: &Tensor, acc: &mut Tensor) -> Result<()> {
        const OP: &str = "count_correct_into";
        want_float(OP, self, self.dtype)?;
        want(OP, acc, DType::U32)?;
        if acc.numel() != 1 {
            return Err(Error::invalid(
                OP,
                format!("the accumulator must hold one value, got {}", acc.shape),
            ));
        }
        let (rows, cols) = labels_for(OP, self, labels)?;
        same_device(OP, &[self, labels, acc])?;
        match (&*self.storage, &*labels.storage, acc.storage_mut()?) {
            (Storage::Cpu(x), Storage::Cpu(t), Storage::Cpu(a)) => {
                CpuBackend.count_correct(&x.widen_f16(), t, a, rows, cols, true)
            }
            (Storage::Gpu(x), Storage::Gpu(t), Storage::Gpu(a)) => {
                x.ctx().count_correct(x, t, a, rows, cols, true)
            }
            _ => unreachable!("same_device checked the operands"),
        }
    }

    /// `[N, classes]` with a 1 at `(i, self[i])` and 0 elsewhere, for u32 indices `[N]` (an
    /// index ≥ `classes` gives a zero row).
    pub fn one_hot(&self, classes: usize, dtype: DType) -> Result<Tensor> {
        const OP: &str = "one_hot";
        want(OP, self, DType::U32)?;
        if !dtype.is_float() || classes == 0 {
            return Err(Error::invalid(
                OP,
                format!("{classes} classes of {dtype}: needs ≥ 1 class and a float dtype"),
            ));
        }
        let n = self.numel();
        let device = self.device();
        let mut out = Tensor::zeros([n, classes], DType::F32, &device)?;
        match (out.storage_mut()?, &*self.storage) {
            (Storage::Cpu(o), Storage::Cpu(i)) => CpuBackend.one_hot(i, o, n, classes)?,
            (Storage::Gpu(o), Storage::Gpu(i)) => {
                let ctx = o.ctx().clone();
                ctx.one_hot(i, o, n, classes)?
            }
            _ => unreachable!("one tensor, one device"),
        }
        out.to_dtype(dtype)
    }
}

fn labels_for(op: &'static str, logits: &Tensor, labels: &Tensor) -> Result<(usize, usize)> {
    let (rows, cols) = rows_cols(op, logits)?;
    want(op, labels, DType::U32)?;
    if labels.numel() != rows || labels.shape.rank() != 1 {
        return Err(Error::shapes(
            op,
            &logits.shape,
            &labels.shape,
            format!("expected labels of shape [{rows}] (one class index per row)"),
        ));
    }
    Ok((rows, cols))
}
