//! Checked tensor operations: validate shapes and dtypes, allocate the output on the operands'
//! device, and forward to the device's [`Backend`]. This is the one place that dispatches on
//! where a tensor lives; layers and optimizers above only call these methods.
//!
//! One file per op family, each op's forward beside its backward rule: `pointwise` (every
//! elementwise op, from the table in `ops/pointwise.rs`), `reduce` (dim reductions, softmax
//! along a dim), `matmul` (PyTorch's matmul, the transposed GEMM, `linear`), `shape`
//! (reshape, permute, cat, narrow), `index` (index_select, gather), `loss` (the fused
//! softmax-cross-entropy and accuracy counts), `conv`, `pool`, `norm`, `data` (byte gathers,
//! dropout, augmentation), `optim` (the fused optimizer updates), `operators` (`std::ops`).
//! This file holds what they share: the device dispatch (`backend!`) and the operand checks.

// The family files take these (and the checks below) with `use super::*`.
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
        $crate::tensor_ops::same_device($op, &[$(&$t),+])?;
        #[allow(unused_parens)]
        match ($(&*$t.storage),+) {
            ($($crate::tensor::Storage::Cpu($b)),+) => {
                let $be = &$crate::cpu::CpuBackend;
                if $dt == $crate::dtype::DType::F16 {
                    $(
                        let $b = $b.widen_f16();
                        let $b = &*$b;
                    )+
                    let $dt = $crate::dtype::DType::F32;
                    let _ = $dt;
                    let out = $body;
                    out.and_then($crate::tensor_ops::RoundToF16::round_to_f16)
                } else {
                    $body
                }
            }
            ($($crate::tensor::Storage::Gpu($b)),+) => {
                let $be = backend!(@ctx $($b),+);
                $body
            }
            #[allow(unreachable_patterns)]
            _ => unreachable!("same_device checked the operands"),
        }
    }};
    (@ctx $f:ident $(, $r:ident)*) => { $f.ctx() };
}

mod conv;
mod data;
mod index;
pub(crate) mod kernels;
mod loss;
mod matmul;
mod norm;
mod operators;
mod optim;
pub(crate) mod pointwise;
mod pool;
mod reduce;
mod rnn;
pub(crate) mod shape;

pub use optim::OptimTarget;

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

impl<A: RoundToF16, B: RoundToF16, C: RoundToF16, D: RoundToF16> RoundToF16 for (A, B, C, D) {
    fn round_to_f16(self) -> Result<Self> {
        let (a, b, c, d) = self;
        Ok((
            a.round_to_f16()?,
            b.round_to_f16()?,
            c.round_to_f16()?,
            d.round_to_f16()?,
        ))
    }
}

impl<A: RoundToF16, B: RoundToF16, C: RoundToF16, D: RoundToF16, E: RoundToF16> RoundToF16
    for (A, B, C, D, E)
{
    fn round_to_f16(self) -> Result<Self> {
        let (a, b, c, d, e) = self;
        let (a, b, c, d) = (a, b, c, d).round_to_f16()?;
        Ok((a, b, c, d, e.round_to_f16()?))
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

/// Runs an in-place CPU op on `s`, through an f32 copy when `s` is f16 (rounded back after).
pub(crate) fn in_place_f32(
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
