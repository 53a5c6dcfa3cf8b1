//! Checked tensor operations: validate shapes and dtypes, allocate the output on the operands'
//! device, and forward to the device's [`Backend`]. This is the one place that dispatches on
//! where a tensor lives; layers and optimizers above only call these methods.

use crate::Device;
use crate::autograd::record;
use crate::cpu::CpuBackend;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::ops::{
    Backend, BlockCopy, BnGeom, Conv2dGeom, DropoutSpec, MatmulSpec, OptimStep, Pool2dGeom,
};
use crate::shape::Shape;
use crate::tensor::{Storage, Tensor};

/// All operands must be on one device.
fn same_device(op: &'static str, ts: &[&Tensor]) -> Result<()> {
    let first = ts[0].device();
    for t in &ts[1..] {
        let d = t.device();
        if !first.same(&d) {
            return Err(Error::DeviceMismatch {
                op,
                lhs: first.to_string(),
                rhs: d.to_string(),
            });
        }
    }
    Ok(())
}

/// Runs `$body` with `$be` bound to the operands' backend and each `$b` to a tensor's buffer.
/// `$dt` is the op's float dtype. The CPU computes f16 in f32: its f16 operands are widened,
/// the body runs with `$dt` = F32, and the float results are rounded back to f16 — so the CPU
/// is the reference for the GPU's f16 kernels, which also accumulate in f32.
macro_rules! backend {
    ($op:expr, $dt:ident, [$($t:expr => $b:ident),+], |$be:ident| $body:expr) => {{
        same_device($op, &[$(&$t),+])?;
        #[allow(unused_parens)]
        match ($(&*$t.storage),+) {
            ($(Storage::Cpu($b)),+) => {
                let $be = &CpuBackend;
                if $dt == DType::F16 {
                    $(
                        let $b = $b.widen_f16();
                        let $b = &*$b;
                    )+
                    let $dt = DType::F32;
                    let _ = $dt;
                    let out = $body;
                    out.and_then(RoundToF16::round_to_f16)
                } else {
                    $body
                }
            }
            ($(Storage::Gpu($b)),+) => {
                let $be = backend!(@ctx $($b),+);
                $body
            }
            #[allow(unreachable_patterns)]
            _ => unreachable!("same_device checked the operands"),
        }
    }};
    (@ctx $f:ident $(, $r:ident)*) => { $f.ctx() };
}

mod index;
mod matmul;
mod operators;
pub(crate) mod pointwise;
mod reduce;
pub(crate) mod shape;

/// Rounds the f32 results of a CPU f16 op back to f16 (u32 results are left alone).
trait RoundToF16: Sized {
    fn round_to_f16(self) -> Result<Self>;
}

impl RoundToF16 for Tensor {
    fn round_to_f16(self) -> Result<Tensor> {
        if self.dtype == DType::F32 {
            self.to_dtype(DType::F16)
        } else {
            Ok(self)
        }
    }
}

impl RoundToF16 for (Tensor, Tensor) {
    fn round_to_f16(self) -> Result<Self> {
        Ok((self.0.round_to_f16()?, self.1.round_to_f16()?))
    }
}

impl<T: RoundToF16> RoundToF16 for Option<T> {
    fn round_to_f16(self) -> Result<Self> {
        self.map(T::round_to_f16).transpose()
    }
}

impl<A: RoundToF16, B: RoundToF16, C: RoundToF16> RoundToF16 for (A, B, C) {
    fn round_to_f16(self) -> Result<Self> {
        Ok((
            self.0.round_to_f16()?,
            self.1.round_to_f16()?,
            self.2.round_to_f16()?,
        ))
    }
}

/// A float operand of dtype `dt`: f32, or f16 where the device has f16 kernels.
fn want_float(op: &'static str, t: &Tensor, dt: DType) -> Result<()> {
    if !t.dtype.is_float() || t.dtype != dt {
        return Err(Error::DTypeMismatch {
            op,
            expected: if dt.is_float() { dt } else { DType::F32 },
            got: t.dtype,
        });
    }
    if let Storage::Gpu(b) = &*t.storage
        && dt == DType::F16
        && !b.ctx().supports_f16()
    {
        return Err(Error::UnsupportedDType {
            op,
            dtype: dt,
            why: format!(
                "on adapter \"{}\": it lacks SHADER_F16",
                b.ctx().summary().name
            ),
        });
    }
    Ok(())
}

fn want(op: &'static str, t: &Tensor, dtype: DType) -> Result<()> {
    if t.dtype == dtype {
        return Ok(());
    }
    if dtype == DType::F32 && t.dtype == DType::F16 {
        return Err(Error::UnsupportedDType {
            op,
            dtype: DType::F16,
            why: "by this op (it is f32 only)".into(),
        });
    }
    Err(Error::DTypeMismatch {
        op,
        expected: dtype,
        got: t.dtype,
    })
}

fn same_shape(op: &'static str, a: &Tensor, b: &Tensor) -> Result<()> {
    if a.shape != b.shape {
        return Err(Error::shapes(
            op,
            &a.shape,
            &b.shape,
            "shapes must be equal",
        ));
    }
    Ok(())
}

/// `[rows, cols]` view of a tensor: rows = everything but the last dimension.
fn rows_cols(op: &'static str, t: &Tensor) -> Result<(usize, usize)> {
    match t.dims().last() {
        Some(&c) if c > 0 => Ok((t.numel() / c, c)),
        _ => Err(Error::invalid(
            op,
            format!(
                "needs a tensor with a non-empty last dimension, got {}",
                t.shape
            ),
        )),
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
        let need = (self.requires_grad(), rhs.requires_grad());
        Ok(record(c, OP, &[self, rhs], move |g| {
            let da = match (need.0, trans_a) {
                (false, _) => None,
                (true, true) => Some(b.matmul_t(g, trans_b, true)?),
                (true, false) => Some(g.matmul_t(&b, false, !trans_b)?),
            };
            let db = match (need.1, trans_b) {
                (false, _) => None,
                (true, true) => Some(g.matmul_t(&a, true, trans_a)?),
                (true, false) => Some(a.matmul_t(g, !trans_a, false)?),
            };
            Ok(vec![da, db])
        }))
    }

    /// In place `self = alpha · op(a) · op(b) + beta · self` (gradient accumulation).
    pub fn gemm_(
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

    /// Average over each `k`×`k` window moved by `stride` of an NCHW tensor, zero padding
    /// counted (PyTorch's `avg_pool2d` defaults). Built from the im2col and row-sum kernels
    /// on the `[N·C, 1, H, W]` view, so its backward (col2im) comes with them.
    pub fn avg_pool2d(&self, k: usize, stride: usize, pad: usize) -> Result<Tensor> {
        let &[n, c, h, w] = self.dims() else {
            return Err(Error::invalid(
                "avg_pool2d",
                format!("expected an NCHW tensor, got {}", self.shape),
            ));
        };
        let g = self
            .reshape([n * c, 1, h, w])?
            .conv_geom(k, k, stride, pad)?;
        self.reshape([n * c, 1, h, w])?
            .im2col(k, k, stride, pad)?
            .mean_dim(&[-1], false)?
            .reshape([n, c, g.out_h(), g.out_w()])
    }

    /// The mean of each channel of an NCHW tensor → `[N, C, 1, 1]` (global average pooling,
    /// PyTorch's `adaptive_avg_pool2d(x, 1)`; NiN's and ResNet's head).
    pub fn global_avg_pool2d(&self) -> Result<Tensor> {
        let &[n, c, h, w] = self.dims() else {
            return Err(Error::invalid(
                "global_avg_pool2d",
                format!("expected an NCHW tensor, got {}", self.shape),
            ));
        };
        self.reshape([n * c, h * w])?
            .mean_dim(&[-1], false)?
            .reshape([n, c, 1, 1])
    }

    /// In place `self += alpha * x`.
    pub fn axpy_(&mut self, alpha: f32, x: &Tensor) -> Result<()> {
        const OP: &str = "axpy_";
        want_float(OP, self, self.dtype)?;
        want_float(OP, x, self.dtype)?;
        same_shape(OP, self, x)?;
        same_device(OP, &[self, x])?;
        let n = self.numel();
        match (self.storage_mut()?, &*x.storage) {
            (Storage::Cpu(y), Storage::Cpu(x)) => {
                in_place_f32(y, |y| CpuBackend.axpy(alpha, &x.widen_f16(), y, n))
            }
            (Storage::Gpu(y), Storage::Gpu(x)) => {
                let ctx = y.ctx().clone();
                ctx.axpy(alpha, x, y, n)
            }
            _ => unreachable!("same_device checked the operands"),
        }
    }

    /// In place: every element becomes `value`.
    pub fn fill_(&mut self, value: f32) -> Result<()> {
        want_float("fill_", self, self.dtype)?;
        let n = self.numel();
        match self.storage_mut()? {
            Storage::Cpu(s) => in_place_f32(s, |s| CpuBackend.fill(s, value, n)),
            Storage::Gpu(b) => {
                let ctx = b.ctx().clone();
                ctx.fill(b, value, n)
            }
        }
    }

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
    pub fn softmax_backward(&self, y: &Tensor) -> Result<Tensor> {
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
    /// On a GPU a label ≥ the class count gives a NaN loss (labels are not read back to check).
    pub fn softmax_cross_entropy(&self, labels: &Tensor) -> Result<(Tensor, Tensor)> {
        const OP: &str = "softmax_cross_entropy";
        want_float(OP, self, self.dtype)?;
        let (rows, cols) = labels_for(OP, self, labels)?;
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
    pub fn softmax_cross_entropy_backward(&self, labels: &Tensor, dout: f32) -> Result<Tensor> {
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

    /// The convolution geometry of this NCHW tensor under a `kh`×`kw` window.
    pub fn conv_geom(&self, kh: usize, kw: usize, stride: usize, pad: usize) -> Result<Conv2dGeom> {
        let &[n, c, h, w] = self.dims() else {
            return Err(Error::invalid(
                "im2col",
                format!("expected an NCHW tensor, got {}", self.shape),
            ));
        };
        let g = Conv2dGeom {
            n,
            c,
            h,
            w,
            kh,
            kw,
            stride,
            pad,
        };
        g.validate("im2col")?;
        Ok(g)
    }

    /// im2col of an NCHW tensor → `[n*oh*ow, c*kh*kw]`, rows (n, oy, ox), columns (c, ky, kx).
    pub fn im2col(&self, kh: usize, kw: usize, stride: usize, pad: usize) -> Result<Tensor> {
        const OP: &str = "im2col";
        want_float(OP, self, self.dtype)?;
        let g = self.conv_geom(kh, kw, stride, pad)?;
        let dt = self.dtype;
        let col = backend!(OP, dt, [self => x], |be| {
            let mut col = be.alloc(g.col_rows() * g.col_cols(), dt, OP)?;
            be.im2col(x, &mut col, &g)?;
            Ok(Tensor::from_parts(Shape::new([g.col_rows(), g.col_cols()]), dt, col.into()))
        })?;
        Ok(record(col, OP, &[self], move |d| {
            Ok(vec![Some(d.col2im(&g)?)])
        }))
    }

    /// col2im: the adjoint of im2col (overlapping windows add up) → `[n, c, h, w]` of `g`.
    pub fn col2im(&self, g: &Conv2dGeom) -> Result<Tensor> {
        const OP: &str = "col2im";
        want_float(OP, self, self.dtype)?;
        g.validate(OP)?;
        let expect = Shape::new([g.col_rows(), g.col_cols()]);
        if self.shape != expect {
            return Err(Error::shapes(
                OP,
                &self.shape,
                &expect,
                "columns do not match the geometry",
            ));
        }
        let dt = self.dtype;
        let x = backend!(OP, dt, [self => col], |be| {
            let mut x = be.alloc(g.n * g.c * g.h * g.w, dt, OP)?;
            be.col2im(col, &mut x, g)?;
            Ok(Tensor::from_parts(Shape::new([g.n, g.c, g.h, g.w]), dt, x.into()))
        })?;
        let g = *g;
        Ok(record(x, OP, &[self], move |d| {
            Ok(vec![Some(d.im2col(g.kh, g.kw, g.stride, g.pad)?)])
        }))
    }

    /// 2-D convolution of this NCHW tensor with weights `[F, C, KH, KW]` and bias `[F]` →
    /// `[N, F, OH, OW]`. The CPU runs it image by image (a direct AVX-512 convolution for
    /// stride 1 where the CPU has AVX-512, else columns in cache and one GEMM per image); a GPU
    /// runs it as one implicit-GEMM dispatch (bias and NCHW layout fused, no column matrix),
    /// or, with [`ConvPath::Im2col`](crate::gpu::ConvPath), as the book's im2col + matmul +
    /// layout change, in chunks of images when the columns exceed one storage binding.
    pub fn conv2d(&self, w: &Tensor, b: &Tensor, stride: usize, pad: usize) -> Result<Tensor> {
        const OP: &str = "conv2d";
        let (g, fout) = conv_bias_check(OP, self, w, b, stride, pad)?;
        // The im2col path builds the column matrix [N·OH·OW, C·KH·KW] in one binding: a batch
        // whose columns exceed the adapter's binding limit runs in chunks of images, joined
        // with `cat` (so autograd sees ordinary narrow/conv/cat ops, and each chunk's backward
        // fits as well).
        if let Device::Gpu(ctx) = self.device()
            && ctx.conv_path() == crate::gpu::ConvPath::Im2col
        {
            let per_image =
                (g.col_rows() / g.n.max(1)) as u64 * g.col_cols() as u64 * self.dtype.size() as u64;
            let fit = (ctx.max_tensor_bytes() / per_image.max(1)) as usize;
            if fit == 0 {
                return Err(Error::invalid(
                    OP,
                    format!(
                        "one image's columns take {per_image} bytes, more than this adapter's \
                         {}-byte storage binding",
                        ctx.max_tensor_bytes()
                    ),
                ));
            }
            if fit < g.n {
                let chunks = (0..g.n)
                    .step_by(fit)
                    .map(|i| {
                        self.narrow(0, i, fit.min(g.n - i))?
                            .conv2d(w, b, stride, pad)
                    })
                    .collect::<Result<Vec<_>>>()?;
                return Tensor::cat(&chunks.iter().collect::<Vec<_>>(), 0);
            }
        }
        let dt = self.dtype;
        let out = backend!(OP, dt, [self => x, w => wb, b => bb], |be| {
            let mut out = be.alloc(g.n * fout * g.out_h() * g.out_w(), dt, OP)?;
            be.conv2d(x, wb, bb, &mut out, &g, fout)?;
            Ok(Tensor::from_parts(Shape::new([g.n, fout, g.out_h(), g.out_w()]), dt, out.into()))
        })?;
        // The fused backward kernel gives dx, dw and db in one pass over the columns.
        let (x, wt) = (self.detach(), w.detach());
        // The images of a first layer need no gradient: its dx is skipped, not thrown away.
        let need_dx = self.node.is_some();
        Ok(record(out, OP, &[self, w, b], move |d| {
            let (dx, dw, db) = x.conv2d_backward_parts(&wt, d, stride, pad, need_dx)?;
            Ok(vec![dx, Some(dw), Some(db)])
        }))
    }

    /// [`Tensor::conv2d`] followed by ReLU, as one op: a GPU's implicit-GEMM convolution applies
    /// the ReLU in its epilogue, and the backward masks `dout` inside the gradient kernels (no
    /// separate ReLU passes); elsewhere the two are composed. Same values as
    /// `conv2d(..)?.relu()`.
    pub fn conv2d_relu(&self, w: &Tensor, b: &Tensor, stride: usize, pad: usize) -> Result<Tensor> {
        const OP: &str = "conv2d_relu";
        if let Device::Gpu(ctx) = self.device()
            && ctx.conv_path() == crate::gpu::ConvPath::Im2col
        {
            return self.conv2d(w, b, stride, pad)?.relu();
        }
        let (g, fout) = conv_bias_check(OP, self, w, b, stride, pad)?;
        let dt = self.dtype;
        let out = backend!(OP, dt, [self => x, w => wb, b => bb], |be| {
            let mut out = be.alloc(g.n * fout * g.out_h() * g.out_w(), dt, OP)?;
            be.conv2d_relu(x, wb, bb, &mut out, &g, fout, dt)?;
            Ok(Tensor::from_parts(Shape::new([g.n, fout, g.out_h(), g.out_w()]), dt, out.into()))
        })?;
        let (x, wt, y) = (self.detach(), w.detach(), out.detach());
        let need_dx = self.node.is_some();
        Ok(record(out, OP, &[self, w, b], move |d| {
            let (dx, dw, db) = x.conv2d_relu_backward_parts(&wt, &y, d, stride, pad, need_dx)?;
            Ok(vec![dx, Some(dw), Some(db)])
        }))
    }

    /// Backward of [`Tensor::conv2d_relu`] (`y` its output) with `dx` only when `need_dx`.
    fn conv2d_relu_backward_parts(
        &self,
        w: &Tensor,
        y: &Tensor,
        dout: &Tensor,
        stride: usize,
        pad: usize,
        need_dx: bool,
    ) -> Result<(Option<Tensor>, Tensor, Tensor)> {
        const OP: &str = "conv2d_relu_backward";
        let g = conv_check(OP, self, w, stride, pad)?;
        let fout = w.dims()[0];
        let oshape = Shape::new([g.n, fout, g.out_h(), g.out_w()]);
        for t in [dout, y] {
            if t.shape() != &oshape {
                return Err(Error::shapes(
                    OP,
                    t.shape(),
                    &oshape,
                    "does not match the convolution output",
                ));
            }
            want_float(OP, t, self.dtype)?;
        }
        let dt = self.dtype;
        backend!(OP, dt, [self => x, w => wb, y => yb, dout => d], |be| {
            let mut dx = if need_dx {
                Some(be.alloc(self.numel(), dt, OP)?)
            } else {
                None
            };
            let mut dw = be.alloc(w.numel(), dt, OP)?;
            let mut db = be.alloc(fout, dt, OP)?;
            be.conv2d_relu_bwd(x, wb, yb, d, dx.as_mut(), &mut dw, &mut db, &g, fout, dt)?;
            Ok((
                dx.map(|dx| Tensor::from_parts(self.shape.clone(), dt, dx.into())),
                Tensor::from_parts(w.shape.clone(), dt, dw.into()),
                Tensor::from_parts(Shape::new([fout]), dt, db.into()),
            ))
        })
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
        let need = [self.node.is_some(), w.node.is_some(), b.node.is_some()];
        Ok(record(out, OP, &[self, w, b], move |d| {
            let dz = if relu { d.relu_grad(&y)? } else { d.clone() };
            Ok(vec![
                need[0].then(|| dz.matmul_t(&wt, false, true)).transpose()?,
                need[1].then(|| x.matmul_t(&dz, true, false)).transpose()?,
                need[2].then(|| dz.sum_dim(&[0], false)).transpose()?,
            ])
        }))
    }

    /// Backward of [`Tensor::conv2d`]: `self` is the forward input; returns `(dx, dw, db)`.
    pub fn conv2d_backward(
        &self,
        w: &Tensor,
        dout: &Tensor,
        stride: usize,
        pad: usize,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        let (dx, dw, db) = self.conv2d_backward_parts(w, dout, stride, pad, true)?;
        match dx {
            Some(dx) => Ok((dx, dw, db)),
            None => Err(Error::invalid("conv2d_backward", "dx was not computed")),
        }
    }

    /// [`Tensor::conv2d_backward`] with `dx` computed only when `need_dx`.
    fn conv2d_backward_parts(
        &self,
        w: &Tensor,
        dout: &Tensor,
        stride: usize,
        pad: usize,
        need_dx: bool,
    ) -> Result<(Option<Tensor>, Tensor, Tensor)> {
        const OP: &str = "conv2d_backward";
        let g = conv_check(OP, self, w, stride, pad)?;
        let fout = w.dims()[0];
        let oshape = Shape::new([g.n, fout, g.out_h(), g.out_w()]);
        if dout.shape() != &oshape {
            return Err(Error::shapes(
                OP,
                dout.shape(),
                &oshape,
                "dout does not match the convolution output",
            ));
        }
        want_float(OP, dout, self.dtype)?;
        let dt = self.dtype;
        backend!(OP, dt, [self => x, w => wb, dout => d], |be| {
            let mut dx = if need_dx {
                Some(be.alloc(self.numel(), dt, OP)?)
            } else {
                None
            };
            let mut dw = be.alloc(w.numel(), dt, OP)?;
            let mut db = be.alloc(fout, dt, OP)?;
            be.conv2d_bwd(x, wb, d, dx.as_mut(), &mut dw, &mut db, &g, fout)?;
            Ok((
                dx.map(|dx| Tensor::from_parts(self.shape.clone(), dt, dx.into())),
                Tensor::from_parts(w.shape.clone(), dt, dw.into()),
                Tensor::from_parts(Shape::new([fout]), dt, db.into()),
            ))
        })
    }

    /// The pooling geometry of this NCHW tensor.
    pub fn pool_geom(&self, ph: usize, pw: usize, stride: usize, pad: usize) -> Result<Pool2dGeom> {
        let &[n, c, h, w] = self.dims() else {
            return Err(Error::invalid(
                "max_pool2d",
                format!("expected an NCHW tensor, got {}", self.shape),
            ));
        };
        let g = Pool2dGeom {
            n,
            c,
            h,
            w,
            ph,
            pw,
            stride,
            pad,
        };
        g.validate("max_pool2d")?;
        Ok(g)
    }

    /// Max-pool of an NCHW tensor → `(out [n, c, oh, ow], argmax u32 [n, c, oh, ow])`; the
    /// indices are flat into the input, the first maximum of a window wins (as the book).
    pub fn max_pool2d(
        &self,
        ph: usize,
        pw: usize,
        stride: usize,
        pad: usize,
    ) -> Result<(Tensor, Tensor)> {
        const OP: &str = "max_pool2d";
        want_float(OP, self, self.dtype)?;
        let g = self.pool_geom(ph, pw, stride, pad)?;
        let oshape = Shape::new([g.n, g.c, g.out_h(), g.out_w()]);
        let on = oshape.numel();
        let dt = self.dtype;
        let (out, idx) = backend!(OP, dt, [self => x], |be| {
            let mut out = be.alloc(on, dt, OP)?;
            let mut idx = be.alloc(on, DType::U32, OP)?;
            be.max_pool(x, &mut out, &mut idx, &g)?;
            Ok((
                Tensor::from_parts(oshape.clone(), dt, out.into()),
                Tensor::from_parts(oshape.clone(), DType::U32, idx.into()),
            ))
        })?;
        // Each gradient goes back to its window's argmax, with the fused backward kernel.
        let saved = idx.clone();
        let out = record(out, OP, &[self], move |d| {
            Ok(vec![Some(d.max_pool2d_backward(&saved, &g)?)])
        });
        Ok((out, idx))
    }

    /// Max-pool backward: `self` is dy `[n, c, oh, ow]`; each gradient goes to its argmax.
    pub fn max_pool2d_backward(&self, idx: &Tensor, g: &Pool2dGeom) -> Result<Tensor> {
        const OP: &str = "max_pool2d_backward";
        want_float(OP, self, self.dtype)?;
        want(OP, idx, DType::U32)?;
        g.validate(OP)?;
        let oshape = Shape::new([g.n, g.c, g.out_h(), g.out_w()]);
        if self.shape != oshape {
            return Err(Error::shapes(
                OP,
                &self.shape,
                &oshape,
                "dy does not match the pooling output",
            ));
        }
        same_shape(OP, self, idx)?;
        let dt = self.dtype;
        backend!(OP, dt, [self => dy, idx => ib], |be| {
            let mut dx = be.alloc(g.n * g.c * g.h * g.w, dt, OP)?;
            be.max_pool_bwd(dy, ib, &mut dx, g)?;
            Ok(Tensor::from_parts(Shape::new([g.n, g.c, g.h, g.w]), dt, dx.into()))
        })
    }

    /// Index of the largest element of each row (first wins) → u32 `[rows]`.
    pub fn argmax_rows(&self) -> Result<Tensor> {
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
    pub fn count_correct(&self, labels: &Tensor) -> Result<Tensor> {
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
    pub fn count_correct_into(&self, labels: &Tensor, acc: &mut Tensor) -> Result<()> {
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

    /// One optimizer update in place: `self` is the parameter, `grad` its gradient, `s1`/`s2`
    /// the optimizer's state tensors (as many as [`OptimKind::state_count`]), `guard` a loss
    /// scaler's state ([`crate::optim::LossScaler::state`]; the identity scaler outside mixed
    /// precision): the gradient is divided by its scale and the update skipped while its
    /// non-finite flag is set.
    pub fn optim_update_(
        &mut self,
        grad: &Tensor,
        s1: Option<&mut Tensor>,
        s2: Option<&mut Tensor>,
        guard: &Tensor,
        step: &OptimStep,
    ) -> Result<()> {
        const OP: &str = "optim_update_";
        want(OP, self, DType::F32)?;
        want(OP, grad, DType::F32)?;
        want(OP, guard, DType::U32)?;
        same_shape(OP, self, grad)?;
        same_device(OP, &[self, guard])?;
        let mut states: Vec<&mut Tensor> = [s1, s2].into_iter().flatten().collect();
        if states.len() < step.kind.state_count() {
            return Err(Error::invalid(
                OP,
                format!(
                    "{:?} needs {} state tensors, got {}",
                    step.kind,
                    step.kind.state_count(),
                    states.len()
                ),
            ));
        }
        for st in states.iter() {
            want(OP, st, DType::F32)?;
            same_shape(OP, self, st)?;
            same_device(OP, &[self, st])?;
        }
        same_device(OP, &[self, grad])?;
        let n = self.numel();
        let mut it = states.iter_mut();
        let (a, b) = (it.next(), it.next());
        let sa = match a {
            Some(t) => Some(t.storage_mut()?),
            None => None,
        };
        let sb = match b {
            Some(t) => Some(t.storage_mut()?),
            None => None,
        };
        let g = &*grad.storage;
        match self.storage_mut()? {
            Storage::Cpu(w) => {
                let Storage::Cpu(g) = g else {
                    unreachable!("same_device checked the operands")
                };
                let Storage::Cpu(guard) = &*guard.storage else {
                    unreachable!("same_device checked the operands")
                };
                CpuBackend.optim_update(
                    step,
                    w,
                    g,
                    sa.and_then(as_cpu),
                    sb.and_then(as_cpu),
                    guard,
                    n,
                )
            }
            Storage::Gpu(w) => {
                let Storage::Gpu(g) = g else {
                    unreachable!("same_device checked the operands")
                };
                let ctx = w.ctx().clone();
                let Storage::Gpu(guard) = &*guard.storage else {
                    unreachable!("same_device checked the operands")
                };
                ctx.optim_update(
                    step,
                    w,
                    g,
                    sa.and_then(as_gpu),
                    sb.and_then(as_gpu),
                    guard,
                    n,
                )
            }
        }
    }

    /// [`Tensor::optim_update_`] for many parameters at once, each with its own weight decay:
    /// on a GPU one dispatch updates up to eight tensors (a multi-tensor step), elsewhere
    /// each is updated in turn. Every target is checked before anything is updated.
    pub fn optim_update_many_(
        targets: &mut [OptimTarget<'_>],
        guard: &Tensor,
        step: &OptimStep,
    ) -> Result<()> {
        const OP: &str = "optim_update_";
        want(OP, guard, DType::U32)?;
        for t in targets.iter() {
            want(OP, t.param, DType::F32)?;
            want(OP, t.grad, DType::F32)?;
            same_shape(OP, t.param, t.grad)?;
            same_device(OP, &[t.param, t.grad, guard])?;
            let states = t.s1.is_some() as usize + t.s2.is_some() as usize;
            if states < step.kind.state_count() {
                return Err(Error::invalid(
                    OP,
                    format!(
                        "{:?} needs {} state tensors, got {states}",
                        step.kind,
                        step.kind.state_count()
                    ),
                ));
            }
            for st in [&t.s1, &t.s2].into_iter().flatten() {
                want(OP, st, DType::F32)?;
                same_shape(OP, t.param, st)?;
                same_device(OP, &[t.param, st])?;
            }
        }
        let Storage::Gpu(gbuf) = &*guard.storage else {
            for t in targets.iter_mut() {
                let s = OptimStep {
                    weight_decay: t.weight_decay,
                    ..*step
                };
                t.param.optim_update_(
                    t.grad,
                    t.s1.as_deref_mut(),
                    t.s2.as_deref_mut(),
                    guard,
                    &s,
                )?;
            }
            return Ok(());
        };
        let ctx = gbuf.ctx().clone();
        let mut slots = Vec::with_capacity(targets.len());
        for t in targets.iter_mut() {
            let n = t.param.numel();
            let Storage::Gpu(g) = &*t.grad.storage else {
                unreachable!("same_device checked the operands")
            };
            let s1 = match t.s1.as_deref_mut() {
                Some(x) => as_gpu(x.storage_mut()?),
                None => None,
            };
            let s2 = match t.s2.as_deref_mut() {
                Some(x) => as_gpu(x.storage_mut()?),
                None => None,
            };
            let Some(w) = as_gpu(t.param.storage_mut()?) else {
                unreachable!("same_device checked the operands")
            };
            slots.push(crate::gpu::OptimSlot {
                w,
                g,
                s1,
                s2,
                n,
                weight_decay: t.weight_decay,
            });
        }
        ctx.optim_update_many(step, &mut slots, gbuf)
    }

    /// Multiplies `self` in place by the scale of a loss-scaler state (u32 `[4]`).
    pub(crate) fn scaler_scale_(&mut self, state: &Tensor) -> Result<()> {
        const OP: &str = "loss scaling";
        want_float(OP, self, self.dtype)?;
        same_device(OP, &[self, state])?;
        let n = self.numel();
        match (self.storage_mut()?, &*state.storage) {
            (Storage::Cpu(x), Storage::Cpu(st)) => CpuBackend.scaler_scale(x, st, n),
            (Storage::Gpu(x), Storage::Gpu(st)) => st.ctx().clone().scaler_scale(x, st, n),
            _ => unreachable!("same_device checked the operands"),
        }
    }

    /// Raises the state's non-finite flag if `self` holds an inf or NaN.
    pub(crate) fn scaler_check(&self, state: &mut Tensor) -> Result<()> {
        const OP: &str = "loss scaling";
        want_float(OP, self, self.dtype)?;
        same_device(OP, &[self, state])?;
        let n = self.numel();
        match (&*self.storage, state.storage_mut()?) {
            (Storage::Cpu(x), Storage::Cpu(st)) => CpuBackend.scaler_check(x, st, n),
            (Storage::Gpu(x), Storage::Gpu(st)) => x.ctx().clone().scaler_check(x, st, n),
            _ => unreachable!("same_device checked the operands"),
        }
    }

    /// A fresh loss-scaler state (u32 `[4]`) on `device`, made by a kernel (no upload).
    pub(crate) fn scaler_new(device: &Device, init_scale: f32) -> Result<Tensor> {
        let mut state = Tensor::zeros([4], DType::U32, device)?;
        match state.storage_mut()? {
            Storage::Cpu(st) => CpuBackend.scaler_init(st, init_scale)?,
            Storage::Gpu(st) => st.ctx().clone().scaler_init(st, init_scale)?,
        }
        Ok(state)
    }

    /// The end-of-step update of a loss-scaler state.
    pub(crate) fn scaler_update_(state: &mut Tensor, growth_interval: u32) -> Result<()> {
        match state.storage_mut()? {
            Storage::Cpu(st) => CpuBackend.scaler_update(st, growth_interval),
            Storage::Gpu(st) => st.ctx().clone().scaler_update(st, growth_interval),
        }
    }

    /// Gathers `count` rows of a packed byte matrix (`self`: u32 words holding `row_len`-byte
    /// rows, little-endian) at the row indices `perm[offset..offset + count]`. With `dtype`
    /// F32 the bytes are scaled by `scale` (→ `[count, row_len]` f32); with U32 they are copied.
    pub fn gather_bytes(
        &self,
        perm: &Tensor,
        offset: usize,
        count: usize,
        row_len: usize,
        scale: f32,
        dtype: DType,
    ) -> Result<Tensor> {
        const OP: &str = "gather_bytes";
        want(OP, self, DType::U32)?;
        want(OP, perm, DType::U32)?;
        if offset + count > perm.numel() {
            return Err(Error::invalid(
                OP,
                format!(
                    "rows {offset}..{} of a permutation of {}",
                    offset + count,
                    perm.numel()
                ),
            ));
        }
        if dtype == DType::F16 {
            return Err(Error::UnsupportedDType {
                op: OP,
                dtype,
                why: "as an output yet".into(),
            });
        }
        let dt = self.dtype;
        backend!(OP, dt, [self => src, perm => pm], |be| {
            let mut out = be.alloc(count * row_len, dtype, OP)?;
            be.gather_bytes(src, pm, offset, count, row_len, scale, &mut out)?;
            Ok(Tensor::from_parts(Shape::new([count, row_len]), dtype, out.into()))
        })
    }

    /// Embedding lookup: row `idx[i]` of this table `[V, D]` for every u32 index of `idx`
    /// → `idx.shape + [D]`. The CPU refuses an index ≥ V naming it; a GPU kernel cannot
    /// report one without a readback and gives a zero row. Backward: `dW = one_hot(idx)ᵀ · dy`,
    /// the scatter-add of the rows' gradients as a matmul (deterministic; WGSL has no float
    /// atomics).
    pub fn embedding(&self, idx: &Tensor) -> Result<Tensor> {
        const OP: &str = "embedding";
        want_float(OP, self, self.dtype)?;
        want(OP, idx, DType::U32)?;
        let &[v, d] = self.dims() else {
            return Err(Error::invalid(
                OP,
                format!("the table must be [rows, dim], got {}", self.shape),
            ));
        };
        let count = idx.numel();
        let mut od = idx.dims().to_vec();
        od.push(d);
        let dt = self.dtype;
        let out = backend!(OP, dt, [self => table, idx => ib], |be| {
            let mut out = be.alloc(count * d, dt, OP)?;
            be.gather_rows(table, ib, &mut out, count, d)?;
            Ok(Tensor::from_parts(Shape::new(od.clone()), dt, out.into()))
        })?;
        let idx = idx.detach();
        Ok(record(out, OP, &[self], move |g| {
            let onehot = idx.one_hot(v, g.dtype)?;
            Ok(vec![Some(onehot.matmul_t(
                &g.reshape([count, d])?,
                true,
                false,
            )?)])
        }))
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

    /// Dropout as one op: `self * mask` with the mask of [`Tensor::dropout_mask`] for `spec`
    /// (same values as `self.mul(&mask)`), whose backward multiplies the gradient by the same
    /// mask. A GPU regenerates the mask from its counter hash in both passes instead of
    /// storing it: one dispatch each way.
    pub fn dropout(&self, spec: &DropoutSpec) -> Result<Tensor> {
        const OP: &str = "dropout";
        if !(0.0..1.0).contains(&spec.ratio) {
            return Err(Error::invalid(
                OP,
                format!("ratio must be in [0, 1), got {}", spec.ratio),
            ));
        }
        want_float(OP, self, self.dtype)?;
        let n = self.numel();
        let dt = self.dtype;
        let spec = *spec;
        let out = backend!(OP, dt, [self => x], |be| {
            let mut out = be.alloc(n, dt, OP)?;
            be.dropout_apply(x, &mut out, n, &spec, dt)?;
            Ok(Tensor::from_parts(self.shape.clone(), dt, out.into()))
        })?;
        Ok(record(out, OP, &[self], move |g| {
            Ok(vec![Some(g.dropout(&spec)?)])
        }))
    }

    /// A dropout mask: element i is `spec.scale` when the counter hash of `(seed, offset + i)`
    /// is ≥ `ratio`, else 0. The same mask on every device.
    pub fn dropout_mask(
        shape: impl Into<Shape>,
        spec: &DropoutSpec,
        device: &Device,
    ) -> Result<Tensor> {
        Tensor::dropout_mask_as(shape, DType::F32, spec, device)
    }

    /// [`Tensor::dropout_mask`] of a float `dtype` (the dtype of the activations it masks).
    pub fn dropout_mask_as(
        shape: impl Into<Shape>,
        dtype: DType,
        spec: &DropoutSpec,
        device: &Device,
    ) -> Result<Tensor> {
        const OP: &str = "dropout_mask";
        if !(0.0..1.0).contains(&spec.ratio) {
            return Err(Error::invalid(
                OP,
                format!("ratio must be in [0, 1), got {}", spec.ratio),
            ));
        }
        if !dtype.is_float() {
            return Err(Error::DTypeMismatch {
                op: OP,
                expected: DType::F32,
                got: dtype,
            });
        }
        let shape = shape.into();
        let n = shape.numel();
        let storage = match device {
            Device::Cpu => {
                let mut m = CpuBackend.alloc(n, DType::F32, OP)?;
                CpuBackend.dropout_mask(&mut m, n, spec)?;
                Storage::Cpu(m.convert(dtype)?)
            }
            Device::Gpu(ctx) => {
                let mut m = ctx.alloc(n, dtype, OP)?;
                ctx.dropout_mask(&mut m, n, spec)?;
                Storage::Gpu(m)
            }
        };
        Ok(Tensor::from_parts(shape, dtype, storage))
    }

    /// Swaps the last two dimensions (`[.., r, c] → [.., c, r]`), materialised: the layout
    /// change between im2col rows `[n, oh*ow, c]` and NCHW `[n, c, oh*ow]`.
    pub fn transpose_last2(&self) -> Result<Tensor> {
        const OP: &str = "transpose_last2";
        want_float(OP, self, self.dtype)?;
        let d = self.dims();
        if d.len() < 2 {
            return Err(Error::invalid(
                OP,
                format!("needs rank ≥ 2, got {}", self.shape),
            ));
        }
        let (r, c) = (d[d.len() - 2], d[d.len() - 1]);
        let batch = self.numel().checked_div(r * c).unwrap_or(0);
        let mut od = d.to_vec();
        let len = od.len();
        od.swap(len - 2, len - 1);
        let dt = self.dtype;
        let out = backend!(OP, dt, [self => x], |be| {
            let mut out = be.alloc(self.numel(), dt, OP)?;
            be.transpose(x, &mut out, batch, r, c)?;
            Ok(Tensor::from_parts(Shape::new(od.clone()), dt, out.into()))
        })?;
        Ok(record(out, OP, &[self], |g| {
            Ok(vec![Some(g.transpose_last2()?)])
        }))
    }
}

/// `(outer, size, inner)` of `shape` around dimension `dim`.
fn around(shape: &Shape, dim: usize) -> (usize, usize, usize) {
    let d = shape.dims();
    (
        d[..dim].iter().product(),
        d[dim],
        d[dim + 1..].iter().product(),
    )
}

impl Tensor {
    /// Training-mode batch normalisation of an f32 view `[N, C, S]` with scale and shift
    /// `gamma`, `beta` `[C]`: each channel normalised by the mean and (biased) variance of its
    /// N·S values. Returns `(y [N, C, S], mean [C], var [C])`; the statistics are outside the
    /// graph (for running averages). Fused kernels both ways (`shaders/norm.wgsl`): the
    /// backward is `dx = γ/(σ·m)·(m·dy - Σdy - x̂·Σdy·x̂)`, `dγ = Σ dy·x̂`, `dβ = Σ dy`.
    /// f32 only: under mixed precision [`crate::nn::BatchNorm`] casts to f32 first (1/σ² of a
    /// near-constant channel overflows f16).
    pub fn batch_norm_train(
        &self,
        gamma: &Tensor,
        beta: &Tensor,
        eps: f32,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        const OP: &str = "batch_norm";
        for t in [self, gamma, beta] {
            if t.dtype != DType::F32 {
                return Err(Error::DTypeMismatch {
                    op: OP,
                    expected: DType::F32,
                    got: t.dtype,
                });
            }
        }
        let &[n, c, s] = self.dims() else {
            return Err(Error::invalid(
                OP,
                format!("expected a [N, C, S] view, got {}", self.shape),
            ));
        };
        for t in [gamma, beta] {
            if t.dims() != [c] {
                return Err(Error::shapes(
                    OP,
                    &self.shape,
                    &t.shape,
                    format!("gamma and beta must be [{c}]"),
                ));
            }
        }
        if n * s == 0 {
            return Err(Error::invalid(OP, "no values to normalise"));
        }
        let g = BnGeom { n, c, s, eps };
        let dt = DType::F32;
        let (y, saved, var) = backend!(OP, dt, [self => x, gamma => gb, beta => bb], |be| {
            let mut saved = be.alloc(2 * c, dt, OP)?;
            let mut var = be.alloc(c, dt, OP)?;
            be.bn_stats(x, &mut saved, &mut var, &g)?;
            let mut y = be.alloc(n * c * s, dt, OP)?;
            be.bn_apply(x, &saved, gb, bb, &mut y, &g)?;
            Ok((
                Tensor::from_parts(self.shape.clone(), dt, y.into()),
                Tensor::from_parts(Shape::new([2 * c]), dt, saved.into()),
                Tensor::from_parts(Shape::new([c]), dt, var.into()),
            ))
        })?;
        let mean = saved.narrow(0, 0, c)?;
        let (x, gam, sv) = (self.detach(), gamma.detach(), saved);
        let y = record(y, OP, &[self, gamma, beta], move |d| {
            const OP: &str = "batch_norm_backward";
            let (dx, dg, db) = backend!(OP, dt, [x => xb, d => dyb, sv => sb, gam => gb], |be| {
                let mut dg = be.alloc(c, dt, OP)?;
                let mut dbeta = be.alloc(c, dt, OP)?;
                be.bn_bwd_reduce(xb, dyb, sb, &mut dg, &mut dbeta, &g)?;
                let mut dx = be.alloc(n * c * s, dt, OP)?;
                be.bn_bwd_dx(xb, dyb, sb, gb, &dg, &dbeta, &mut dx, &g)?;
                Ok((
                    Tensor::from_parts(x.shape.clone(), dt, dx.into()),
                    Tensor::from_parts(Shape::new([c]), dt, dg.into()),
                    Tensor::from_parts(Shape::new([c]), dt, dbeta.into()),
                ))
            })?;
            Ok(vec![Some(dx), Some(dg), Some(db)])
        });
        Ok((y, mean, var))
    }

    /// In place: the [`BlockCopy`] `b` from `src` into `self`.
    fn copy_block_(&mut self, src: &Tensor, b: &BlockCopy) -> Result<()> {
        const OP: &str = "copy_block";
        want_float(OP, self, self.dtype)?;
        want_float(OP, src, self.dtype)?;
        same_device(OP, &[self, src])?;
        match (self.storage_mut()?, &*src.storage) {
            (Storage::Cpu(d), Storage::Cpu(s)) => {
                in_place_f32(d, |d| CpuBackend.copy_block(&s.widen_f16(), d, b))
            }
            (Storage::Gpu(d), Storage::Gpu(s)) => {
                let ctx = d.ctx().clone();
                ctx.copy_block(s, d, b)
            }
            _ => unreachable!("same_device checked the operands"),
        }
    }

    /// Random augmentation of a batch of NCHW images in [0, 1] (`spec`: rotation, scale,
    /// shift, flip, brightness, contrast; image `i` seeded by `(spec.seed, spec.offset + i)`,
    /// so a seed gives the same images on every device). An input-pipeline op, like
    /// [`Tensor::resize_bilinear`]: not differentiable.
    pub fn augment(&self, spec: &crate::ops::AugmentSpec) -> Result<Tensor> {
        const OP: &str = "augment";
        want_float(OP, self, self.dtype)?;
        let &[n, c, h, w] = self.dims() else {
            return Err(Error::invalid(
                OP,
                format!("expected NCHW images, got {}", self.shape),
            ));
        };
        let bounds = [
            spec.rotate,
            spec.scale,
            spec.shift,
            spec.brightness,
            spec.contrast,
            spec.elastic_alpha,
            spec.elastic_sigma,
        ];
        if bounds.iter().any(|b| !b.is_finite() || *b < 0.0) || spec.scale >= 1.0 {
            return Err(Error::invalid(
                OP,
                format!("bounds must be finite and ≥ 0 (scale < 1): {spec:?}"),
            ));
        }
        if spec.elastic() && !(0.25..=32.0).contains(&spec.elastic_sigma) {
            return Err(Error::invalid(
                OP,
                format!(
                    "elastic_sigma must be in [0.25, 32] pixels when elastic_alpha > 0, got {}",
                    spec.elastic_sigma
                ),
            ));
        }
        if crate::autograd::wants_grad(&[self]) {
            return Err(Error::invalid(
                OP,
                "not differentiable: augment inputs before they enter the graph (or detach)",
            ));
        }
        let dt = self.dtype;
        backend!(OP, dt, [self => x], |be| {
            let mut out = be.alloc(n * c * h * w, dt, OP)?;
            be.augment(x, &mut out, n, c, h, w, spec)?;
            Ok(Tensor::from_parts(self.shape.clone(), dt, out.into()))
        })
    }

    /// Bilinear resize of an NCHW tensor to `[N, C, oh, ow]` (PyTorch's
    /// `interpolate(mode="bilinear", align_corners=False)`, no antialiasing: meant for
    /// enlarging inputs, as d2l resizes Fashion-MNIST to 224 or 96 pixels). An input-pipeline
    /// op: not differentiable, so it refuses a tensor that requires a gradient.
    pub fn resize_bilinear(&self, oh: usize, ow: usize) -> Result<Tensor> {
        const OP: &str = "resize_bilinear";
        want_float(OP, self, self.dtype)?;
        let &[n, c, h, w] = self.dims() else {
            return Err(Error::invalid(
                OP,
                format!("expected an NCHW tensor, got {}", self.shape),
            ));
        };
        if oh == 0 || ow == 0 || h == 0 || w == 0 {
            return Err(Error::invalid(
                OP,
                format!("cannot resize {} to {oh}x{ow}", self.shape),
            ));
        }
        if crate::autograd::wants_grad(&[self]) {
            return Err(Error::invalid(
                OP,
                "not differentiable: resize inputs before they enter the graph (or detach)",
            ));
        }
        let dt = self.dtype;
        backend!(OP, dt, [self => x], |be| {
            let mut out = be.alloc(n * c * oh * ow, dt, OP)?;
            be.resize_bilinear(x, &mut out, n * c, h, w, oh, ow)?;
            Ok(Tensor::from_parts(Shape::new([n, c, oh, ow]), dt, out.into()))
        })
    }

    /// Elements `start..start + len` along dimension `dim` (PyTorch's `narrow`, a slice),
    /// copied. Backward: the gradient goes back into those positions of a zero tensor.
    pub fn narrow(&self, dim: usize, start: usize, len: usize) -> Result<Tensor> {
        const OP: &str = "narrow";
        let rank = self.shape.rank();
        if dim >= rank || start + len > self.dims()[dim] || len == 0 {
            return Err(Error::invalid(
                OP,
                format!(
                    "cannot take {start}..{} along dimension {dim} of a {} tensor",
                    start + len,
                    self.shape
                ),
            ));
        }
        let (outer, size, inner) = around(&self.shape, dim);
        let mut od = self.dims().to_vec();
        od[dim] = len;
        let mut out = Tensor::zeros(od, self.dtype, &self.device())?;
        let b = BlockCopy {
            outer,
            len,
            inner,
            src_dim: size,
            dst_dim: len,
            src_off: start,
            dst_off: 0,
        };
        out.copy_block_(&self.detach(), &b)?;
        let shape = self.shape.clone();
        Ok(record(out, OP, &[self], move |g| {
            let mut dx = Tensor::zeros(shape, g.dtype, &g.device())?;
            let back = BlockCopy {
                src_dim: len,
                dst_dim: size,
                src_off: 0,
                dst_off: start,
                ..b
            };
            dx.copy_block_(g, &back)?;
            Ok(vec![Some(dx)])
        }))
    }

    /// `tensors` joined along dimension `dim` (PyTorch's `torch.cat`): equal shapes but in
    /// `dim`, one dtype, one device. Backward: each input gets its slice of the gradient.
    pub fn cat(tensors: &[&Tensor], dim: usize) -> Result<Tensor> {
        const OP: &str = "cat";
        let Some(first) = tensors.first() else {
            return Err(Error::invalid(OP, "nothing to concatenate"));
        };
        if dim >= first.shape.rank() {
            return Err(Error::invalid(
                OP,
                format!("dimension {dim} of a {} tensor", first.shape),
            ));
        }
        let mut total = 0;
        for t in tensors {
            want_float(OP, t, first.dtype)?;
            let same_rest = t.shape.rank() == first.shape.rank()
                && (0..first.shape.rank()).all(|i| i == dim || t.dims()[i] == first.dims()[i]);
            if !same_rest {
                return Err(Error::shapes(
                    OP,
                    &first.shape,
                    &t.shape,
                    format!("shapes must agree in every dimension but {dim}"),
                ));
            }
            total += t.dims()[dim];
        }
        let refs: Vec<&Tensor> = tensors.to_vec();
        same_device(OP, &refs)?;
        let mut od = first.dims().to_vec();
        od[dim] = total;
        let out_shape = Shape::new(od);
        let mut out = Tensor::zeros(out_shape.clone(), first.dtype, &first.device())?;
        let mut off = 0;
        let mut pieces = Vec::with_capacity(tensors.len());
        for t in tensors {
            let (outer, len, inner) = around(&t.shape, dim);
            let b = BlockCopy {
                outer,
                len,
                inner,
                src_dim: len,
                dst_dim: total,
                src_off: 0,
                dst_off: off,
            };
            out.copy_block_(&t.detach(), &b)?;
            pieces.push((off, len));
            off += len;
        }
        Ok(record(out, OP, &refs, move |g| {
            pieces
                .iter()
                .map(|&(off, len)| g.narrow(dim, off, len).map(Some))
                .collect()
        }))
    }
}

/// Runs an in-place CPU op on `s`, through an f32 copy when `s` is f16 (rounded back after).
fn in_place_f32(
    s: &mut crate::cpu::CpuStorage,
    f: impl FnOnce(&mut crate::cpu::CpuStorage) -> Result<()>,
) -> Result<()> {
    if s.dtype() != DType::F16 {
        return f(s);
    }
    let mut wide = s.widen_f16().into_owned();
    f(&mut wide)?;
    *s = wide.convert(DType::F16)?;
    Ok(())
}

fn conv_check(
    op: &'static str,
    x: &Tensor,
    w: &Tensor,
    stride: usize,
    pad: usize,
) -> Result<Conv2dGeom> {
    want_float(op, x, x.dtype)?;
    want_float(op, w, x.dtype)?;
    let (&[_, c, _, _], &[_, wc, kh, kw]) = (x.dims(), w.dims()) else {
        return Err(Error::shapes(
            op,
            &x.shape,
            &w.shape,
            "expected NCHW input and [F, C, KH, KW] weights",
        ));
    };
    if c != wc {
        return Err(Error::shapes(
            op,
            &x.shape,
            &w.shape,
            format!("input has {c} channels, weights expect {wc}"),
        ));
    }
    x.conv_geom(kh, kw, stride, pad)
}

/// [`conv_check`] plus the bias: `b` must be a float `[F]` for weights `[F, C, KH, KW]`.
/// Returns the geometry and F.
fn conv_bias_check(
    op: &'static str,
    x: &Tensor,
    w: &Tensor,
    b: &Tensor,
    stride: usize,
    pad: usize,
) -> Result<(Conv2dGeom, usize)> {
    let g = conv_check(op, x, w, stride, pad)?;
    let fout = w.dims()[0];
    if b.dims() != [fout] {
        return Err(Error::shapes(
            op,
            w.shape(),
            b.shape(),
            format!("bias must be [{fout}]"),
        ));
    }
    want_float(op, b, x.dtype)?;
    Ok((g, fout))
}

/// One parameter of [`Tensor::optim_update_many_`]: the parameter, its gradient, the
/// optimizer's state tensors for it and its weight decay.
pub struct OptimTarget<'a> {
    /// Updated in place.
    pub param: &'a mut Tensor,
    /// Its gradient (f32).
    pub grad: &'a Tensor,
    /// The first state tensor, if the rule has one.
    pub s1: Option<&'a mut Tensor>,
    /// The second state tensor, if the rule has two.
    pub s2: Option<&'a mut Tensor>,
    /// λ for this parameter (0 for biases).
    pub weight_decay: f32,
}

fn as_cpu(s: &mut Storage) -> Option<&mut crate::cpu::CpuStorage> {
    match s {
        Storage::Cpu(c) => Some(c),
        Storage::Gpu(_) => None,
    }
}

fn as_gpu(s: &mut Storage) -> Option<&mut crate::gpu::GpuBuffer> {
    match s {
        Storage::Gpu(b) => Some(b),
        Storage::Cpu(_) => None,
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
