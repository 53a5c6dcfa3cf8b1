//! `matmul` with PyTorch's semantics at any rank ≥ 1: vectors are promoted and the added dim
//! removed, a matrix operand is shared across the other's batch, and batch dims broadcast.
//! 2-D products (and a batch times a matrix, folded into one 2-D product) run on the tuned
//! GEMMs of `matmul.wgsl`; batched ones on `bmm.wgsl`.

use super::*;
use crate::autograd::record_needs;
use crate::ops::BmmSpec;
use crate::ops::pointwise::broadcast_shapes;

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
        if crate::shape::checked_product(&od).is_none() {
            return Err(Error::shapes(
                OP,
                self.shape(),
                rhs.shape(),
                format!("the product's size {od:?} overflows"),
            ));
        }
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
        let out = if batch * m * n == 0 {
            // An empty product: nothing to compute (a kernel would still walk every batch).
            Tensor::zeros(od.clone(), dt, &self.device())?
        } else {
            backend!(OP, dt, [self => a, rhs => b], |be| {
                let mut c = be.alloc(batch * m * n, dt, OP)?;
                be.bmm(a, b, &mut c, &spec)?;
                Ok(Tensor::from_parts(Shape::new(od.clone()), dt, c.into()))
            })?
        };
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

impl Tensor {
    /// Matrix product `op(self) · op(rhs)` of two rank-2 tensors, `op` transposing when its
    /// flag is set (so `a.matmul_t(&b, true, false)` is `aᵀ b` without materialising `aᵀ`):
    /// BLAS's `gemm` flags, for code that keeps a transposed layout (see [`Tensor::matmul`]
    /// for PyTorch's product).
    pub fn matmul_t(&self, rhs: &Tensor, trans_a: bool, trans_b: bool) -> Result<Tensor> {
        const OP: &str = "matmul";
        want_float(OP, self, self.dtype)?;
        want_float(OP, rhs, self.dtype)?;
        let spec = matmul_spec(self, rhs, trans_a, trans_b, 1.0, 0.0)?;
        let dt = self.dtype;
        let c = backend!(OP, dt, [self => a, rhs => b], |be| {
            let mut c = be.alloc(spec.m * spec.n, dt, OP)?;
            be.matmul(a, b, &mut c, &spec)?;
            Ok(Tensor::from_parts(Shape::new([spec.m, spec.n]), dt, c.into()))
        })?;
        // C = op(A)·op(B): dop(A) = dC·op(B)ᵀ and dop(B) = op(A)ᵀ·dC, transposed back where
        // the operand was used transposed — all through the flags, no transpose copies.
        // An operand outside the graph (a batch of inputs) gets no product computed for it.
        let (a, b) = (self.detach(), rhs.detach());
        Ok(record_needs(c, OP, &[self, rhs], move |g, needs| {
            let da = match (needs[0], trans_a) {
                (false, _) => None,
                (true, true) => Some(b.matmul_t(g, trans_b, true)?),
                (true, false) => Some(g.matmul_t(&b, false, !trans_b)?),
            };
            let db = match (needs[1], trans_b) {
                (false, _) => None,
                (true, true) => Some(g.matmul_t(&a, true, trans_a)?),
                (true, false) => Some(a.matmul_t(g, !trans_a, false)?),
            };
            Ok(vec![da, db])
        }))
    }

    /// In place `self = alpha · op(a) · op(b) + beta · self` (gradient accumulation).
    pub(crate) fn gemm_(
        &mut self,
        a: &Tensor,
        b: &Tensor,
        trans_a: bool,
        trans_b: bool,
        alpha: f32,
        beta: f32,
    ) -> Result<()> {
        const OP: &str = "gemm_";
        for t in [&*self, a, b] {
            want_float(OP, t, self.dtype)?;
        }
        let spec = matmul_spec(a, b, trans_a, trans_b, alpha, beta)?;
        if self.shape.as_2d() != Some((spec.m, spec.n)) {
            return Err(Error::shapes(
                OP,
                &self.shape,
                &Shape::new([spec.m, spec.n]),
                "output shape differs from the product's",
            ));
        }
        same_device(OP, &[self, a, b])?;
        match (self.storage_mut()?, &*a.storage, &*b.storage) {
            (Storage::Cpu(c), Storage::Cpu(x), Storage::Cpu(y)) => in_place_f32(c, |c| {
                CpuBackend.matmul(&x.widen_f16(), &y.widen_f16(), c, &spec)
            }),
            (Storage::Gpu(c), Storage::Gpu(x), Storage::Gpu(y)) => {
                let ctx = c.ctx().clone();
                ctx.matmul(x, y, c, &spec)
            }
            _ => unreachable!("same_device checked the operands"),
        }
    }

    /// A linear layer as one op: `self [n, k] · w [k, m] + b [m]`, then ReLU when `relu`. A GPU
    /// computes it in one GEMM with the bias (and ReLU) in the epilogue; the backward is
    /// `dz = dout` (masked by the output when `relu`), `dx = dz · wᵀ`, `dw = selfᵀ · dz`,
    /// `db = Σ_rows dz`. Same values as `matmul(w)?.add(b)` (`?.relu()`).
    pub fn linear(&self, w: &Tensor, b: &Tensor, relu: bool) -> Result<Tensor> {
        const OP: &str = "linear";
        let (&[n, k], &[k2, m]) = (self.dims(), w.dims()) else {
            return Err(Error::shapes(
                OP,
                self.shape(),
                w.shape(),
                "expected x [n, k] and w [k, m]",
            ));
        };
        if k != k2 {
            return Err(Error::shapes(
                OP,
                self.shape(),
                w.shape(),
                "inner dimensions differ",
            ));
        }
        if b.dims() != [m] {
            return Err(Error::shapes(
                OP,
                w.shape(),
                b.shape(),
                format!("bias must be [{m}]"),
            ));
        }
        if n.checked_mul(m).is_none() {
            return Err(Error::shapes(
                OP,
                self.shape(),
                w.shape(),
                "the output's size overflows",
            ));
        }
        want_float(OP, self, self.dtype)?;
        want_float(OP, w, self.dtype)?;
        want_float(OP, b, self.dtype)?;
        let dt = self.dtype;
        let spec = MatmulSpec {
            m: n,
            n: m,
            k,
            trans_a: false,
            trans_b: false,
            alpha: 1.0,
            beta: 0.0,
        };
        let out = backend!(OP, dt, [self => xb, w => wb, b => bb], |be| {
            let mut out = be.alloc(n * m, dt, OP)?;
            be.matmul_bias(xb, wb, bb, &mut out, &spec, relu, dt)?;
            Ok(Tensor::from_parts(Shape::new([n, m]), dt, out.into()))
        })?;
        let (x, wt, y) = (self.detach(), w.detach(), out.detach());
        Ok(record_needs(out, OP, &[self, w, b], move |d, needs| {
            let dz = if relu { d.relu_grad(&y)? } else { d.clone() };
            Ok(vec![
                needs[0]
                    .then(|| dz.matmul_t(&wt, false, true))
                    .transpose()?,
                needs[1].then(|| x.matmul_t(&dz, true, false)).transpose()?,
                needs[2].then(|| dz.sum_dim(&[0], false)).transpose()?,
            ])
        }))
    }
}

fn matmul_spec(
    a: &Tensor,
    b: &Tensor,
    trans_a: bool,
    trans_b: bool,
    alpha: f32,
    beta: f32,
) -> Result<MatmulSpec> {
    const OP: &str = "matmul";
    let (Some((ar, ac)), Some((br, bc))) = (a.shape.as_2d(), b.shape.as_2d()) else {
        return Err(Error::shapes(
            OP,
            &a.shape,
            &b.shape,
            "both operands must be rank 2",
        ));
    };
    let (m, k) = if trans_a { (ac, ar) } else { (ar, ac) };
    let (k2, n) = if trans_b { (bc, br) } else { (br, bc) };
    if k != k2 {
        return Err(Error::shapes(
            OP,
            &a.shape,
            &b.shape,
            format!("inner dimensions differ ({k} vs {k2}; trans_a={trans_a}, trans_b={trans_b})"),
        ));
    }
    if m.checked_mul(n).is_none() {
        return Err(Error::shapes(
            OP,
            &a.shape,
            &b.shape,
            "the product's size overflows",
        ));
    }
    Ok(MatmulSpec {
        m,
        n,
        k,
        trans_a,
        trans_b,
        alpha,
        beta,
    })
}
