//! Elementwise ops on tensors: NumPy broadcasting at any rank, every device, autograd from the
//! op table's gradient rows (`src/ops/pointwise.rs`). One generic forward and one generic
//! backward serve every row; the methods below only name the row and its scalars.

use super::*;
use crate::autograd::{record_needs, wants_grad};
use crate::ops::pointwise::{broadcast_shapes, broadcast_strides};
use crate::ops::{PointwiseOp, Pw, Strided};

impl Tensor {
    /// Runs `f` over `ins` broadcast together (or to `to`, when given: `expand`), recording its
    /// gradient rows for autograd.
    pub(crate) fn pointwise(
        f: Pw,
        ins: &[&Tensor],
        a: f32,
        b: f32,
        to: Option<&[usize]>,
    ) -> Result<Tensor> {
        let name = f.name();
        if ins.len() != f.arity() {
            return Err(Error::invalid(
                name,
                format!("takes {} inputs, got {}", f.arity(), ins.len()),
            ));
        }
        let dt = ins[0].dtype;
        for t in ins {
            want_float(name, t, dt)?;
        }
        let mut shape = ins[0].dims().to_vec();
        for t in &ins[1..] {
            shape = broadcast_shapes(name, &shape, t.dims())?;
        }
        if let Some(to) = to {
            let full = broadcast_shapes(name, &shape, to)?;
            if full != to {
                return Err(Error::invalid(
                    name,
                    format!("cannot expand {shape:?} to {to:?}"),
                ));
            }
            shape = full;
        }
        // The broadcast (or expanded) output must be countable before its strides are.
        crate::tensor::checked_len(name, &Shape::new(shape.clone()), dt)?;
        let strides: Vec<Vec<usize>> = ins
            .iter()
            .map(|t| broadcast_strides(t.dims(), &shape))
            .collect();
        let walk = Strided::new(name, &shape, &strides)?;
        let out = run(PointwiseOp::new(f, a, b), ins, Shape::new(shape), &walk, dt)?;
        if f.grads().is_empty() || !wants_grad(ins) {
            return Ok(out);
        }
        let saved: Vec<Tensor> = ins.iter().map(|t| t.detach()).collect();
        // Unary gradient rows read the forward output; the others the first two inputs.
        let second = if f.arity() == 1 {
            out.detach()
        } else {
            saved[1].clone()
        };
        Ok(record_needs(out, name, ins, move |g, needs| {
            let mut grads = Vec::with_capacity(saved.len());
            for (k, row) in f.grads().iter().enumerate() {
                grads.push(match row {
                    Some(r) if needs[k] => Some(if *r == Pw::IdentityGrad {
                        g.sum_to(saved[k].dims())?
                    } else {
                        Tensor::pointwise(*r, &[g, &saved[0], &second], a, b, Some(g.dims()))?
                            .sum_to(saved[k].dims())?
                    }),
                    _ => None,
                });
            }
            Ok(grads)
        }))
    }

    /// ReLU's backward: `self` is dy, `x` the forward input (or output): `dy · (x > 0)`.
    pub(crate) fn relu_grad(&self, x: &Tensor) -> Result<Tensor> {
        Tensor::pointwise(Pw::ReluGrad, &[self, x, x], 0.0, 0.0, None)
    }

    fn unary_pw(&self, f: Pw, a: f32, b: f32) -> Result<Tensor> {
        Tensor::pointwise(f, &[self], a, b, None)
    }

    fn binary_pw(&self, rhs: &Tensor, f: Pw) -> Result<Tensor> {
        Tensor::pointwise(f, &[self, rhs], 0.0, 0.0, None)
    }

    /// `self + rhs`, broadcast (NumPy rules at any rank, as PyTorch).
    pub fn add(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary_pw(rhs, Pw::Add)
    }

    /// `self - rhs`, broadcast.
    pub fn sub(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary_pw(rhs, Pw::Sub)
    }

    /// `self * rhs` elementwise, broadcast.
    pub fn mul(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary_pw(rhs, Pw::Mul)
    }

    /// `self / rhs` elementwise, broadcast.
    pub fn div(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary_pw(rhs, Pw::Div)
    }

    /// `self ^ rhs` elementwise, broadcast (an integral exponent keeps a negative base's sign).
    pub fn pow(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary_pw(rhs, Pw::Pow)
    }

    /// Elementwise maximum, broadcast (ties share the gradient, as PyTorch).
    pub fn maximum(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary_pw(rhs, Pw::Maximum)
    }

    /// Elementwise minimum, broadcast.
    pub fn minimum(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary_pw(rhs, Pw::Minimum)
    }

    /// `1` where `self == rhs`, else `0`, in `self`'s float dtype (wgnn's masks are float
    /// tensors; PyTorch's are bool). Not differentiable.
    pub fn eq(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary_pw(rhs, Pw::Eq)
    }

    /// `1` where `self != rhs`, else `0`.
    pub fn ne(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary_pw(rhs, Pw::Ne)
    }

    /// `1` where `self < rhs`, else `0`.
    pub fn lt(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary_pw(rhs, Pw::Lt)
    }

    /// `1` where `self <= rhs`, else `0`.
    pub fn le(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary_pw(rhs, Pw::Le)
    }

    /// `1` where `self > rhs`, else `0`.
    pub fn gt(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary_pw(rhs, Pw::Gt)
    }

    /// `1` where `self >= rhs`, else `0`.
    pub fn ge(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary_pw(rhs, Pw::Ge)
    }

    /// `a` where `mask` is nonzero, else `b`, all three broadcast (PyTorch's `torch.where`).
    pub fn where_(mask: &Tensor, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        Tensor::pointwise(Pw::Where, &[mask, a, b], 0.0, 0.0, None)
    }

    /// `value` where `mask` (broadcast to `self`) is nonzero, else `self`.
    pub fn masked_fill(&self, mask: &Tensor, value: f32) -> Result<Tensor> {
        Tensor::pointwise(Pw::MaskedFill, &[self, mask], value, 0.0, None)
    }

    /// `self + value`.
    pub fn add_scalar(&self, value: f32) -> Result<Tensor> {
        self.unary_pw(Pw::AddScalar, value, 0.0)
    }

    /// `self * value` (also [`Tensor::scale`]).
    pub fn mul_scalar(&self, value: f32) -> Result<Tensor> {
        self.unary_pw(Pw::Scale, value, 0.0)
    }

    /// `alpha * self`.
    pub fn scale(&self, alpha: f32) -> Result<Tensor> {
        self.unary_pw(Pw::Scale, alpha, 0.0)
    }

    /// `self ^ exponent` (PyTorch's `pow` with a number; named as Rust's `f32::powf`).
    pub fn powf(&self, exponent: f32) -> Result<Tensor> {
        self.unary_pw(Pw::PowScalar, exponent, 0.0)
    }

    /// `-self`.
    pub fn neg(&self) -> Result<Tensor> {
        self.unary_pw(Pw::Neg, 0.0, 0.0)
    }

    /// `|self|`.
    pub fn abs(&self) -> Result<Tensor> {
        self.unary_pw(Pw::Abs, 0.0, 0.0)
    }

    /// `√self`.
    pub fn sqrt(&self) -> Result<Tensor> {
        self.unary_pw(Pw::Sqrt, 0.0, 0.0)
    }

    /// `1/√self`.
    pub fn rsqrt(&self) -> Result<Tensor> {
        self.unary_pw(Pw::Rsqrt, 0.0, 0.0)
    }

    /// `√(self + eps)`.
    pub fn sqrt_eps(&self, eps: f32) -> Result<Tensor> {
        self.unary_pw(Pw::SqrtEps, eps, 0.0)
    }

    /// `1 / self`.
    pub fn recip(&self) -> Result<Tensor> {
        self.unary_pw(Pw::Recip, 0.0, 0.0)
    }

    /// `e^self`.
    pub fn exp(&self) -> Result<Tensor> {
        self.unary_pw(Pw::Exp, 0.0, 0.0)
    }

    /// `ln(self)` (NaN below 0, -inf at 0, as IEEE).
    pub fn log(&self) -> Result<Tensor> {
        self.unary_pw(Pw::Log, 0.0, 0.0)
    }

    /// `sin(self)`.
    pub fn sin(&self) -> Result<Tensor> {
        self.unary_pw(Pw::Sin, 0.0, 0.0)
    }

    /// `cos(self)`.
    pub fn cos(&self) -> Result<Tensor> {
        self.unary_pw(Pw::Cos, 0.0, 0.0)
    }

    /// `tanh(self)`.
    pub fn tanh(&self) -> Result<Tensor> {
        self.unary_pw(Pw::Tanh, 0.0, 0.0)
    }

    /// `1 / (1 + e^-self)`.
    pub fn sigmoid(&self) -> Result<Tensor> {
        self.unary_pw(Pw::Sigmoid, 0.0, 0.0)
    }

    /// `max(self, 0)`.
    pub fn relu(&self) -> Result<Tensor> {
        self.unary_pw(Pw::Relu, 0.0, 0.0)
    }

    /// `self` where positive, else `negative_slope · self` (PyTorch's default slope: 0.01).
    pub fn leaky_relu(&self, negative_slope: f32) -> Result<Tensor> {
        self.unary_pw(Pw::LeakyRelu, negative_slope, 0.0)
    }

    /// ELU: `self` where positive, else `alpha (e^self - 1)` (PyTorch's default alpha: 1).
    pub fn elu(&self, alpha: f32) -> Result<Tensor> {
        self.unary_pw(Pw::Elu, alpha, 0.0)
    }

    /// GELU with the exact normal CDF, `x Φ(x)` (PyTorch's default `gelu`).
    pub fn gelu(&self) -> Result<Tensor> {
        self.unary_pw(Pw::Gelu, 0.0, 0.0)
    }

    /// SiLU (swish), `x σ(x)`.
    pub fn silu(&self) -> Result<Tensor> {
        self.unary_pw(Pw::Silu, 0.0, 0.0)
    }

    /// `ln(1 + e^self)`, computed without overflow (the smooth ReLU; BCE-with-logits' core).
    pub fn softplus(&self) -> Result<Tensor> {
        self.unary_pw(Pw::Softplus, 0.0, 0.0)
    }

    /// `self` clamped into `[min, max]` (gradient 1 inside, bounds included, as PyTorch).
    pub fn clamp(&self, min: f32, max: f32) -> Result<Tensor> {
        if min.is_nan() || max.is_nan() || min > max {
            return Err(Error::invalid(
                "clamp",
                format!("needs min <= max, got min {min}, max {max}"),
            ));
        }
        self.unary_pw(Pw::Clamp, min, max)
    }

    /// `max(self, min)`.
    pub fn clamp_min(&self, min: f32) -> Result<Tensor> {
        self.clamp(min, f32::INFINITY)
    }

    /// `min(self, max)`.
    pub fn clamp_max(&self, max: f32) -> Result<Tensor> {
        self.clamp(f32::NEG_INFINITY, max)
    }

    /// `self` broadcast to `shape` (PyTorch's `expand`, materialised: wgnn tensors are
    /// contiguous). Its gradient sums back over the broadcast dims.
    pub fn expand(&self, shape: impl Into<Shape>) -> Result<Tensor> {
        let shape = shape.into();
        Tensor::pointwise(Pw::Identity, &[self], 0.0, 0.0, Some(shape.dims()))
    }

    /// `self` repeated NumPy-style up to `shape` (same as [`Tensor::expand`]).
    pub fn broadcast_to(&self, shape: impl Into<Shape>) -> Result<Tensor> {
        self.expand(shape)
    }
}

/// Runs one pointwise op on the operands' device; the CPU computes f16 in f32 and rounds back.
pub(crate) fn run(
    op: PointwiseOp,
    ins: &[&Tensor],
    shape: Shape,
    walk: &Strided,
    dt: DType,
) -> Result<Tensor> {
    let name = op.f.name();
    same_device(name, ins)?;
    if shape.numel() == 0 {
        return Tensor::zeros(shape, dt, &ins[0].device());
    }
    let n = walk.numel();
    match &*ins[0].storage {
        Storage::Cpu(_) => {
            let wide: Vec<_> = ins
                .iter()
                .map(|t| match &*t.storage {
                    Storage::Cpu(s) => s.widen_f16(),
                    Storage::Gpu(_) => unreachable!("same_device checked the operands"),
                })
                .collect();
            let refs: Vec<_> = wide.iter().map(|c| &**c).collect();
            let mut out = CpuBackend.alloc(n, DType::F32, name)?;
            CpuBackend.pointwise(&op, &refs, &mut out, walk)?;
            let t = Tensor::from_parts(shape, DType::F32, out.into());
            if dt == DType::F16 {
                t.round_to_f16()
            } else {
                Ok(t)
            }
        }
        Storage::Gpu(first) => {
            let ctx = first.ctx().clone();
            let bufs: Vec<_> = ins
                .iter()
                .map(|t| match &*t.storage {
                    Storage::Gpu(b) => b,
                    Storage::Cpu(_) => unreachable!("same_device checked the operands"),
                })
                .collect();
            let mut out = ctx.alloc(n, dt, name)?;
            ctx.pointwise(&op, &bufs, &mut out, walk)?;
            Ok(Tensor::from_parts(shape, dt, out.into()))
        }
    }
}

impl Tensor {
    /// In place `self += alpha * x`.
    pub(crate) fn axpy_(&mut self, alpha: f32, x: &Tensor) -> Result<()> {
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
}
