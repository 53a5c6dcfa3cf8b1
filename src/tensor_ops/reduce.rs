//! Reductions over chosen dims, with `keepdim` (PyTorch's semantics): `sum`, `mean`, `var`,
//! `amax`/`amin`, `max_dim`/`min_dim` with indices, `argmax`/`argmin`, `logsumexp`, and the
//! softmax family along any dim. Sums run on the row- or column-sum kernels when the reduced
//! dims are trailing or leading, after one permuting copy otherwise; the max/min family on
//! `index.wgsl`'s `extreme_rows`. Full reductions return a 0-d tensor (shape `[]`).

use super::shape::{dim_index, dim_set};
use super::want_float;
use crate::autograd::record;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::ops::{Backend, IndexGeom};
use crate::shape::Shape;
use crate::tensor::Tensor;

/// Shapes of a reduction over `dims` of `d`: with the reduced dims kept as 1, and as returned.
fn reduced_shapes(d: &[usize], dims: &[usize], keepdim: bool) -> (Vec<usize>, Vec<usize>) {
    let kept: Vec<usize> = d
        .iter()
        .enumerate()
        .map(|(i, &s)| if dims.contains(&i) { 1 } else { s })
        .collect();
    let out = if keepdim {
        kept.clone()
    } else {
        d.iter()
            .enumerate()
            .filter(|(i, _)| !dims.contains(i))
            .map(|(_, &s)| s)
            .collect()
    };
    (kept, out)
}

impl Tensor {
    /// `[rows, cols]` → `[rows]` (row sums, `alpha` times), or with `columns` `[cols]`.
    fn sum_2d(&self, rows: usize, cols: usize, alpha: f32, columns: bool) -> Result<Tensor> {
        const OP: &str = "sum";
        let dt = self.dtype;
        let n = if columns { cols } else { rows };
        backend!(OP, dt, [self => x], |be| {
            let mut out = be.alloc(n, dt, OP)?;
            if columns {
                be.sum_rows(x, &mut out, rows, cols, alpha)?;
            } else {
                be.sum_cols(x, &mut out, rows, cols, alpha)?;
            }
            Ok(Tensor::from_parts(Shape::new([n]), dt, out.into()))
        })
    }

    /// The values outside the graph with `dims` moved last, as `(tensor, rows, reduced)`.
    fn reduced_last(&self, dims: &[usize]) -> Result<(Tensor, usize, usize)> {
        let rank = self.dims().len();
        let r: usize = dims.iter().map(|&i| self.dims()[i]).product();
        let rows = self.numel().checked_div(r).unwrap_or(0);
        let mut perm: Vec<usize> = (0..rank).filter(|d| !dims.contains(d)).collect();
        perm.extend_from_slice(dims);
        let x = if perm.iter().enumerate().all(|(i, &p)| i == p) {
            self.detach()
        } else {
            self.detach().permute_idx(&perm)?
        };
        Ok((x, rows, r))
    }

    /// `alpha · Σ` over `dims` (sorted, distinct).
    fn sum_scaled(&self, dims: &[usize], keepdim: bool, alpha: f32) -> Result<Tensor> {
        const OP: &str = "sum";
        want_float(OP, self, self.dtype)?;
        let d = self.dims().to_vec();
        let (kept, out_shape) = reduced_shapes(&d, dims, keepdim);
        let r: usize = dims.iter().map(|&i| d[i]).product();
        let rows = self.numel().checked_div(r).unwrap_or(0);
        let out = if self.numel() == 0 {
            Tensor::zeros(out_shape.clone(), self.dtype, &self.device())?
        } else if dims.is_empty() {
            self.detach().scale(alpha)?
        } else {
            let k = dims.len();
            let trailing = dims.iter().enumerate().all(|(i, &x)| x == d.len() - k + i);
            let leading = dims.iter().enumerate().all(|(i, &x)| x == i);
            let flat = if trailing {
                self.detach().sum_2d(rows, r, alpha, false)?
            } else if leading {
                self.detach().sum_2d(r, rows, alpha, true)?
            } else {
                let (x, rows, r) = self.reduced_last(dims)?;
                x.sum_2d(rows, r, alpha, false)?
            };
            flat.reshape_to(out_shape.clone())?
        };
        let in_shape = d;
        Ok(record(out, OP, &[self], move |g| {
            let g = if alpha == 1.0 {
                g.clone()
            } else {
                g.scale(alpha)?
            };
            Ok(vec![Some(g.reshape_to(kept)?.expand(in_shape)?)])
        }))
    }

    /// Sum of all elements → a 0-d tensor.
    pub fn sum(&self) -> Result<Tensor> {
        let all: Vec<usize> = (0..self.dims().len()).collect();
        self.sum_scaled(&all, false, 1.0)
    }

    /// Sum over `dims` (negative counts from the end), keeping them as size 1 with `keepdim`.
    pub fn sum_dim(&self, dims: &[isize], keepdim: bool) -> Result<Tensor> {
        let dims = dim_set("sum", dims, self.dims().len())?;
        self.sum_scaled(&dims, keepdim, 1.0)
    }

    /// Mean of all elements → a 0-d tensor.
    pub fn mean(&self) -> Result<Tensor> {
        if self.numel() == 0 {
            return Err(Error::invalid("mean", "of an empty tensor"));
        }
        let all: Vec<usize> = (0..self.dims().len()).collect();
        self.sum_scaled(&all, false, 1.0 / self.numel() as f32)
    }

    /// Mean over `dims`.
    pub fn mean_dim(&self, dims: &[isize], keepdim: bool) -> Result<Tensor> {
        let dims = dim_set("mean", dims, self.dims().len())?;
        let r: usize = dims.iter().map(|&i| self.dims()[i]).product();
        if r == 0 {
            return Err(Error::invalid("mean", "over an empty dim"));
        }
        self.sum_scaled(&dims, keepdim, 1.0 / r as f32)
    }

    /// Variance over `dims` with `correction` (1: unbiased, PyTorch's default; 0: biased).
    pub fn var_dim(&self, dims: &[isize], correction: usize, keepdim: bool) -> Result<Tensor> {
        let set = dim_set("var", dims, self.dims().len())?;
        let r: usize = set.iter().map(|&i| self.dims()[i]).product();
        if r <= correction {
            return Err(Error::invalid(
                "var",
                format!("{r} values with correction {correction}"),
            ));
        }
        let dev = self.sub(&self.mean_dim(dims, true)?)?;
        dev.mul(&dev)?
            .sum_scaled(&set, keepdim, 1.0 / (r - correction) as f32)
    }

    /// Unbiased variance of all elements → a 0-d tensor.
    pub fn var(&self) -> Result<Tensor> {
        let all: Vec<isize> = (0..self.dims().len() as isize).collect();
        self.var_dim(&all, 1, false)
    }

    /// `[rows, cols]` → the max (min) of each row and its first index (u32), outside the graph.
    fn extreme_2d(&self, rows: usize, cols: usize, min: bool) -> Result<(Tensor, Tensor)> {
        const OP: &str = "max";
        want_float(OP, self, self.dtype)?;
        if cols == 0 {
            return Err(Error::invalid(OP, "over an empty dim"));
        }
        let dt = self.dtype;
        backend!(OP, dt, [self => x], |be| {
            let mut v = be.alloc(rows, dt, OP)?;
            let mut i = be.alloc(rows, DType::U32, OP)?;
            be.extreme_rows(x, &mut v, &mut i, rows, cols, min)?;
            Ok((
                Tensor::from_parts(Shape::new([rows]), dt, v.into()),
                Tensor::from_parts(Shape::new([rows]), DType::U32, i.into()),
            ))
        })
    }

    fn amax_impl(&self, dims: &[isize], keepdim: bool, min: bool) -> Result<Tensor> {
        let op = if min { "amin" } else { "amax" };
        let set = dim_set(op, dims, self.dims().len())?;
        let (kept, out_shape) = reduced_shapes(self.dims(), &set, keepdim);
        let (x, rows, r) = self.reduced_last(&set)?;
        let values = x.extreme_2d(rows, r, min)?.0.reshape_to(out_shape)?;
        let (input, v) = (self.detach(), values.detach());
        Ok(record(values, op, &[self], move |g| {
            // Ties share the gradient evenly (PyTorch's amax/amin).
            let mask = input.eq(&v.reshape_to(kept.clone())?)?;
            let count = mask.sum_scaled(&set, true, 1.0)?;
            let share = g.reshape_to(kept)?.div(&count)?;
            Ok(vec![Some(mask.mul(&share)?)])
        }))
    }

    /// Max over `dims` → values only (PyTorch's `amax`; ties share the gradient).
    pub fn amax(&self, dims: &[isize], keepdim: bool) -> Result<Tensor> {
        self.amax_impl(dims, keepdim, false)
    }

    /// Min over `dims` (PyTorch's `amin`).
    pub fn amin(&self, dims: &[isize], keepdim: bool) -> Result<Tensor> {
        self.amax_impl(dims, keepdim, true)
    }

    /// Largest element → a 0-d tensor.
    pub fn max(&self) -> Result<Tensor> {
        let all: Vec<isize> = (0..self.dims().len() as isize).collect();
        self.amax(&all, false)
    }

    /// Smallest element → a 0-d tensor.
    pub fn min(&self) -> Result<Tensor> {
        let all: Vec<isize> = (0..self.dims().len() as isize).collect();
        self.amin(&all, false)
    }

    fn max_dim_impl(&self, dim: isize, keepdim: bool, min: bool) -> Result<(Tensor, Tensor)> {
        let op = if min { "min_dim" } else { "max_dim" };
        let rank = self.dims().len();
        let i = dim_index(op, dim, rank)?;
        if rank == 0 {
            // PyTorch: the max of a 0-d tensor along dim 0 is itself, at index 0.
            return self.reshape_to([1])?.max_dim_impl(0, false, min);
        }
        let (_, out_shape) = reduced_shapes(self.dims(), &[i], keepdim);
        let (x, rows, r) = self.reduced_last(&[i])?;
        let (v, idx) = x.extreme_2d(rows, r, min)?;
        let (v, idx) = (v.reshape_to(out_shape.clone())?, idx.reshape_to(out_shape)?);
        let d = self.dims();
        let geom = IndexGeom {
            outer: d[..i].iter().product(),
            size: d[i],
            inner: d[i + 1..].iter().product(),
            count: 1,
        };
        let (saved_idx, in_shape) = (idx.clone(), self.shape().clone());
        let v = record(v, op, &[self], move |g| {
            // The gradient goes to the index that was picked (PyTorch's max(dim)).
            Ok(vec![Some(
                g.scatter_add_along(&saved_idx, &geom, in_shape)?,
            )])
        });
        Ok((v, idx))
    }

    /// Max along `dim` → `(values, indices)` (indices u32; the first of ties; the gradient
    /// goes to the picked index, as PyTorch's `max(dim)`).
    pub fn max_dim(&self, dim: isize, keepdim: bool) -> Result<(Tensor, Tensor)> {
        self.max_dim_impl(dim, keepdim, false)
    }

    /// Min along `dim` → `(values, indices)`.
    pub fn min_dim(&self, dim: isize, keepdim: bool) -> Result<(Tensor, Tensor)> {
        self.max_dim_impl(dim, keepdim, true)
    }

    /// Index of the max along `dim` (u32; the first of ties).
    pub fn argmax(&self, dim: isize, keepdim: bool) -> Result<Tensor> {
        Ok(self.detach().max_dim_impl(dim, keepdim, false)?.1)
    }

    /// Index of the min along `dim` (u32).
    pub fn argmin(&self, dim: isize, keepdim: bool) -> Result<Tensor> {
        Ok(self.detach().max_dim_impl(dim, keepdim, true)?.1)
    }

    /// `ln Σ exp` over `dims`, computed stably (the max is subtracted first).
    pub fn logsumexp(&self, dims: &[isize], keepdim: bool) -> Result<Tensor> {
        let set = dim_set("logsumexp", dims, self.dims().len())?;
        let (_, out_shape) = reduced_shapes(self.dims(), &set, keepdim);
        // The shift is a constant for the gradient (its derivative cancels exactly).
        let m = self.detach().amax(dims, true)?;
        let m = m.masked_fill(&m.abs()?.eq(&Tensor::full_like(&m, f32::INFINITY)?)?, 0.0)?;
        let lse = self
            .sub(&m)?
            .exp()?
            .sum_scaled(&set, true, 1.0)?
            .log()?
            .add(&m)?;
        lse.reshape_to(out_shape)
    }

    /// Softmax along `dim`, numerically stable.
    pub fn softmax(&self, dim: isize) -> Result<Tensor> {
        let rank = self.dims().len();
        let i = dim_index("softmax", dim, rank)?;
        if i + 1 == rank {
            return self.softmax_last();
        }
        self.movedim(i as isize, -1)?
            .softmax_last()?
            .movedim(-1, i as isize)
    }

    /// `ln softmax` along `dim`, as `x - logsumexp(x)` (no `ln 0`).
    pub fn log_softmax(&self, dim: isize) -> Result<Tensor> {
        self.sub(&self.logsumexp(&[dim], true)?)
    }

    /// Sums `self` down to `shape`, which must broadcast to `self`'s (the gradient of a
    /// broadcast; PyTorch's `sum_to_size`).
    pub fn sum_to(&self, shape: &[usize]) -> Result<Tensor> {
        const OP: &str = "sum_to";
        let d = self.dims();
        if d == shape {
            return Ok(self.clone());
        }
        let bad = || {
            Error::invalid(
                OP,
                format!("{shape:?} does not broadcast to the tensor's {d:?}"),
            )
        };
        if shape.len() > d.len() {
            return Err(bad());
        }
        let lead = d.len() - shape.len();
        let mut dims = Vec::new();
        for (i, &s) in d.iter().enumerate() {
            if i < lead {
                dims.push(i);
            } else if shape[i - lead] != s {
                if shape[i - lead] != 1 {
                    return Err(bad());
                }
                dims.push(i);
            }
        }
        self.sum_scaled(&dims, true, 1.0)?
            .reshape_to(shape.to_vec())
    }

    /// Layer normalisation over the last `dims` dims (PyTorch's `layer_norm` with
    /// `normalized_shape` = those dims): `(x - mean) / √(var + eps)` with the biased variance,
    /// then `· weight + bias` when given (shaped like the normalised dims).
    pub fn layer_norm(
        &self,
        dims: usize,
        weight: Option<&Tensor>,
        bias: Option<&Tensor>,
        eps: f32,
    ) -> Result<Tensor> {
        let rank = self.dims().len();
        if dims == 0 || dims > rank {
            return Err(Error::invalid(
                "layer_norm",
                format!("normalises {dims} trailing dims of a rank-{rank} tensor"),
            ));
        }
        let last: Vec<isize> = (rank - dims..rank).map(|d| d as isize).collect();
        let centred = self.sub(&self.mean_dim(&last, true)?)?;
        let var = centred.mul(&centred)?.mean_dim(&last, true)?;
        let mut y = centred.mul(&var.add_scalar(eps)?.rsqrt()?)?;
        if let Some(w) = weight {
            y = y.mul(w)?;
        }
        if let Some(b) = bias {
            y = y.add(b)?;
        }
        Ok(y)
    }
}
