//! `matmul` with PyTorch's semantics at any rank ≥ 1: vectors are promoted and the added dim
//! removed, a matrix operand is shared across the other's batch, and batch dims broadcast.
//! 2-D products (and a batch times a matrix, folded into one 2-D product) run on the tuned
//! GEMMs of `matmul.wgsl`; batched ones on `bmm.wgsl`.

use super::{RoundToF16, same_device, want_float};
use crate::autograd::record_needs;
use crate::cpu::CpuBackend;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::ops::pointwise::broadcast_shapes;
use crate::ops::{Backend, BmmSpec};
use crate::shape::Shape;
use crate::tensor::{Storage, Tensor};

impl Tensor {
    /// The matrix product of PyTorch's `torch.matmul`: `[.., m, k] @ [.., k, n] → [.., m, n]`
    /// with broadcast batch dims; a 1-D left operand is a row, a 1-D right operand a column
    /// (their dim is removed from the result; vector · vector is a 0-d tensor).
    pub fn matmul(&self, rhs: &Tensor) -> Result<Tensor> {
        const OP: &str = "matmul";
        let (ra, rb) = (self.dims().len(), rhs.dims().len());
        if ra == 0 || rb == 0 {
            return Err(Error::invalid(
                OP,
                "needs operands of rank ≥ 1, got a 0-d tensor",
            ));
        }
        let a = if ra == 1 {
            self.unsqueeze(0)?
        } else {
            self.clone()
        };
        let b = if rb == 1 {
            rhs.unsqueeze(-1)?
        } else {
            rhs.clone()
        };
        let (da, db) = (a.dims().to_vec(), b.dims().to_vec());
        let (m, k) = (da[da.len() - 2], da[da.len() - 1]);
        let (k2, n) = (db[db.len() - 2], db[db.len() - 1]);
        if k != k2 {
            return Err(Error::shapes(
                OP,
                self.shape(),
                rhs.shape(),
                "the inner dims differ",
            ));
        }
        let out = if db.len() == 2 {
            // A batch of rows times one matrix: one 2-D product over the folded batch.
            let lead = &da[..da.len() - 2];
            let rows = a.reshape_to([lead.iter().product::<usize>() * m, k])?;
            let mut od = lead.to_vec();
            od.extend([m, n]);
            rows.matmul_t(&b, false, false)?.reshape_to(od)?
        } else {
            let batch = broadcast_shapes(OP, &da[..da.len() - 2], &db[..db.len() - 2])?;
            let expand = |t: &Tensor, rows: usize, cols: usize| -> Result<Tensor> {
                let own: usize = t.dims()[..t.dims().len() - 2].iter().product();
                let mut full = batch.clone();
                full.extend([rows, cols]);
                if own == 1 || t.dims() == full.as_slice() {
                    Ok(t.clone())
                } else {
                    t.expand(full)
                }
            };
            let (a, b) = (expand(&a, m, k)?, expand(&b, k, n)?);
            let mut od = batch.clone();
            od.extend([m, n]);
            a.bmm(&b, od)?
        };
        let mut shape = out.dims().to_vec();
        if rb == 1 {
            shape.pop();
        }
        if ra == 1 {
            shape.remove(shape.len() - 1 - usize::from(rb != 1));
        }
        out.reshape_to(shape)
    }

    /// Batched product of `[B or 1.., m, k]` and `[B or 1.., k, n]` into `out` dims; an
    /// operand whose batch has one element is shared across the batch.
    fn bmm(&self, rhs: &Tensor, out_dims: Vec<usize>) -> Result<Tensor> {
        self.bmm_t(rhs, false, false, out_dims)
    }

    fn bmm_t(&self, rhs: &Tensor, trans_a: bool, trans_b: bool, od: Vec<usize>) -> Result<Tensor> {
        const OP: &str = "matmul";
        want_float(OP, self, self.dtype)?;
        want_float(OP, rhs, self.dtype)?;
        let r = od.len();
        let (m, n) = (od[r - 2], od[r - 1]);
        let batch: usize = od[..r - 2].iter().product();
        let ad = self.dims();
        let k = if trans_a {
            ad[ad.len() - 2]
        } else {
            ad[ad.len() - 1]
        };
        let (sa, sb) = (m * k, k * n);
        let spec = BmmSpec {
            batch,
            m,
            n,
            k,
            stride_a: if self.numel() == sa { 0 } else { sa },
            stride_b: if rhs.numel() == sb { 0 } else { sb },
            trans_a,
            trans_b,
        };
        let dt = self.dtype;
        let out = backend!(OP, dt, [self => a, rhs => b], |be| {
            let mut c = be.alloc(batch * m * n, dt, OP)?;
            be.bmm(a, b, &mut c, &spec)?;
            Ok(Tensor::from_parts(Shape::new(od.clone()), dt, c.into()))
        })?;
        let (a, b) = (self.detach(), rhs.detach());
        Ok(record_needs(out, OP, &[self, rhs], move |g, needs| {
            // dA = g·Bᵀ, dB = Aᵀ·g per batch (through the flags), summed over the batch
            // where the operand was shared.
            let grad = |t: &Tensor, full: Tensor| -> Result<Tensor> {
                if t.numel() == full.numel() {
                    full.reshape_to(t.shape().clone())
                } else {
                    full.sum_dim(&[0], false)?.reshape_to(t.shape().clone())
                }
            };
            let gd = g.dims().to_vec();
            let flat = |rows: usize, cols: usize| vec![batch, rows, cols];
            let g3 = g.reshape_to(flat(gd[r - 2], gd[r - 1]))?;
            let da = if needs[0] {
                let full = if trans_a {
                    b.bmm_t(&g3, trans_b, true, flat(k, m))?
                } else {
                    g3.bmm_t(&b, false, !trans_b, flat(m, k))?
                };
                Some(grad(&a, full)?)
            } else {
                None
            };
            let db = if needs[1] {
                let full = if trans_b {
                    g3.bmm_t(&a, true, trans_a, flat(n, k))?
                } else {
                    a.bmm_t(&g3, !trans_a, false, flat(k, n))?
                };
                Some(grad(&b, full)?)
            } else {
                None
            };
            Ok(vec![da, db])
        }))
    }
}
