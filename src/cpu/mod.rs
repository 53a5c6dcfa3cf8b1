//! The CPU backend: the reference every GPU kernel is cross-checked against, and the fallback
//! where there is no GPU. Written for clarity first, then speed:
//! - matmul calls ndarray's GEMM engine (matrixmultiply) directly, so transposed operands are
//!   read through strides and the product is split across the rayon pool (`gemm.rs`);
//! - stride-1 convolution on AVX-512 CPUs is direct, from a zero-padded copy of each image with
//!   no column matrix (`direct.rs`); elsewhere it runs image by image with the columns in cache
//!   (`gemm.rs`); the
//!   batch-wide `im2col`/`col2im` here stay as the plain reference the tests compare against;
//! - layout changes use ndarray views; the rest are single passes over slices with no
//!   per-element allocation.

use crate::dtype::{DType, Element};
use crate::error::{Error, Result};
use crate::ops::{
    AugmentSpec, Backend, BlockCopy, BmmSpec, BnGeom, Conv2dGeom, Distribution, DropoutSpec,
    IndexGeom, MatmulSpec, OptimKind, OptimStep, PointwiseOp, Pool2dGeom, RandomSpec, RnnCellBwd,
    RnnCellFwd, RnnLayerBwd, RnnLayerFwd, RnnStep, Strided,
};
use crate::rng::counter_uniform;
use half::f16;
use ndarray::{ArrayView3, ArrayViewMut3};
use rayon::prelude::*;

#[cfg(target_arch = "x86_64")]
mod avx512;
mod conv;
mod conv_gemm;
mod data;
mod direct;
mod gemm;
mod index;
mod layout;
mod matmul;
mod norm;
mod optim;
pub(crate) mod pointwise;
mod pooling;
mod reduce;
mod rnn;
mod rnn_layer;
mod softmax;

/// `C = A B` for row-major `A [m, k]`, `B [k, n]` and `C [m, n]`, straight through the CPU
/// backend's GEMM (split across the rayon pool, no tensor bookkeeping): for benchmarks of the
/// kernel itself. Errors, changing nothing, when a slice is shorter than its shape.
pub fn sgemm(m: usize, k: usize, n: usize, a: &[f32], b: &[f32], c: &mut [f32]) -> Result<()> {
    for (name, len, want) in [
        ("A", a.len(), m * k),
        ("B", b.len(), k * n),
        ("C", c.len(), m * n),
    ] {
        if len < want {
            return Err(Error::invalid(
                "cpu::sgemm",
                format!("{name} holds {len} values, [{m}, {k}, {n}] needs {want}"),
            ));
        }
    }
    let a = Mat {
        data: a,
        rs: k,
        cs: 1,
    };
    let b = Mat {
        data: b,
        rs: n,
        cs: 1,
    };
    gemm(m, k, n, 1.0, a, b, 0.0, c);
    Ok(())
}

pub mod pool;
use gemm::{Mat, gemm};

/// Host storage of one tensor.
#[derive(Clone, Debug)]
pub enum CpuStorage {
    /// f32 elements.
    F32(Vec<f32>),
    /// f16 elements (the `half` crate).
    F16(Vec<f16>),
    /// u32 elements.
    U32(Vec<u32>),
}

impl Drop for CpuStorage {
    fn drop(&mut self) {
        match self {
            CpuStorage::F32(v) => pool::give_f32(std::mem::take(v)),
            CpuStorage::F16(v) => pool::give_f16(std::mem::take(v)),
            CpuStorage::U32(v) => pool::give_u32(std::mem::take(v)),
        }
    }
}

impl CpuStorage {
    pub(crate) fn from_vec<T: Element>(data: Vec<T>) -> CpuStorage {
        match T::DTYPE {
            DType::F32 => CpuStorage::F32(bytemuck::allocation::cast_vec(data)),
            DType::F16 => CpuStorage::F16(bytemuck::allocation::cast_vec(data)),
            DType::U32 => CpuStorage::U32(bytemuck::allocation::cast_vec(data)),
        }
    }

    /// `n` zeros; an allocation the allocator refuses is an error naming `what`. A pooled
    /// buffer, zeroed here, where there is one: writing zeros over memory in cache is cheaper
    /// than faulting in fresh pages (a training step makes the same zeros every step, such as
    /// the gradients of the slices it takes).
    pub(crate) fn zeros(dtype: DType, n: usize, what: &str) -> Result<CpuStorage> {
        Ok(match dtype {
            DType::F32 => {
                let mut v = pool::try_take_f32(n, what)?;
                v.fill(0.0);
                CpuStorage::F32(v)
            }
            DType::F16 => {
                let mut v = pool::try_take_f16(n, what)?;
                v.fill(f16::ZERO);
                CpuStorage::F16(v)
            }
            DType::U32 => {
                let mut v = pool::try_take_u32(n, what)?;
                v.fill(0);
                CpuStorage::U32(v)
            }
        })
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        match self {
            CpuStorage::F32(_) => DType::F32,
            CpuStorage::F16(_) => DType::F16,
            CpuStorage::U32(_) => DType::U32,
        }
    }

    pub(crate) fn to_vec<T: Element>(&self) -> Result<Vec<T>> {
        let bytes: &[u8] = match self {
            CpuStorage::F32(v) => bytemuck::cast_slice(v),
            CpuStorage::F16(v) => bytemuck::cast_slice(v),
            CpuStorage::U32(v) => bytemuck::cast_slice(v),
        };
        if T::DTYPE != self.dtype() {
            return Err(Error::DTypeMismatch {
                op: "to_vec",
                expected: self.dtype(),
                got: T::DTYPE,
            });
        }
        Ok(bytemuck::pod_collect_to_vec(bytes))
    }

    /// This storage with f16 widened to f32 (other dtypes borrowed as they are).
    pub(crate) fn widen_f16(&self) -> std::borrow::Cow<'_, CpuStorage> {
        match self {
            CpuStorage::F16(v) => {
                std::borrow::Cow::Owned(CpuStorage::F32(v.iter().map(|h| h.to_f32()).collect()))
            }
            other => std::borrow::Cow::Borrowed(other),
        }
    }

    /// A copy converted to `dtype` (f32 ↔ f16, rounding to nearest even; same dtype: a clone).
    pub(crate) fn convert(&self, dtype: DType) -> Result<CpuStorage> {
        Ok(match (self, dtype) {
            (s, d) if s.dtype() == d => s.clone(),
            (CpuStorage::F32(v), DType::F16) => {
                CpuStorage::F16(v.iter().map(|&x| f16::from_f32(x)).collect())
            }
            (CpuStorage::F16(v), DType::F32) => {
                CpuStorage::F32(v.iter().map(|h| h.to_f32()).collect())
            }
            (s, d) => {
                return Err(Error::UnsupportedDType {
                    op: "to_dtype",
                    dtype: d,
                    why: format!("as a conversion from {}", s.dtype()),
                });
            }
        })
    }

    fn f32s(&self, op: &'static str) -> Result<&[f32]> {
        match self {
            CpuStorage::F32(v) => Ok(v),
            s => Err(Error::DTypeMismatch {
                op,
                expected: DType::F32,
                got: s.dtype(),
            }),
        }
    }

    fn f32s_mut(&mut self, op: &'static str) -> Result<&mut [f32]> {
        match self {
            CpuStorage::F32(v) => Ok(v),
            s => Err(Error::DTypeMismatch {
                op,
                expected: DType::F32,
                got: s.dtype(),
            }),
        }
    }

    fn u32s(&self, op: &'static str) -> Result<&[u32]> {
        match self {
            CpuStorage::U32(v) => Ok(v),
            s => Err(Error::DTypeMismatch {
                op,
                expected: DType::U32,
                got: s.dtype(),
            }),
        }
    }

    fn u32s_mut(&mut self, op: &'static str) -> Result<&mut [u32]> {
        match self {
            CpuStorage::U32(v) => Ok(v),
            s => Err(Error::DTypeMismatch {
                op,
                expected: DType::U32,
                got: s.dtype(),
            }),
        }
    }
}

/// The ndarray backend (stateless).
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuBackend;

impl Backend for CpuBackend {
    type Buf = CpuStorage;

    fn alloc(&self, numel: usize, dtype: DType, what: &str) -> Result<CpuStorage> {
        // Every op overwrites its whole output (as on the GPU), so recycled contents are fine.
        // Sizes come from user shapes (a --resize, a batch size): a refused allocation is an
        // error naming the op, never an abort.
        Ok(match dtype {
            DType::F32 => CpuStorage::F32(pool::try_take_f32(numel, what)?),
            DType::F16 => CpuStorage::F16(pool::try_take_f16(numel, what)?),
            DType::U32 => CpuStorage::U32(pool::try_take_u32(numel, what)?),
        })
    }

    fn matmul(
        &self,
        a: &CpuStorage,
        b: &CpuStorage,
        c: &mut CpuStorage,
        s: &MatmulSpec,
    ) -> Result<()> {
        CpuBackend::matmul(self, a, b, c, s)
    }

    fn axpy(&self, alpha: f32, x: &CpuStorage, y: &mut CpuStorage, n: usize) -> Result<()> {
        CpuBackend::axpy(self, alpha, x, y, n)
    }

    fn fill(&self, out: &mut CpuStorage, value: f32, n: usize) -> Result<()> {
        CpuBackend::fill(self, out, value, n)
    }

    fn sum_rows(
        &self,
        x: &CpuStorage,
        out: &mut CpuStorage,
        rows: usize,
        cols: usize,
        alpha: f32,
    ) -> Result<()> {
        CpuBackend::sum_rows(self, x, out, rows, cols, alpha)
    }

    fn sum_cols(
        &self,
        x: &CpuStorage,
        out: &mut CpuStorage,
        rows: usize,
        cols: usize,
        alpha: f32,
    ) -> Result<()> {
        CpuBackend::sum_cols(self, x, out, rows, cols, alpha)
    }

    fn softmax(
        &self,
        x: &CpuStorage,
        out: &mut CpuStorage,
        rows: usize,
        cols: usize,
    ) -> Result<()> {
        CpuBackend::softmax(self, x, out, rows, cols)
    }

    fn softmax_bwd(
        &self,
        y: &CpuStorage,
        dy: &CpuStorage,
        dx: &mut CpuStorage,
        rows: usize,
        cols: usize,
    ) -> Result<()> {
        CpuBackend::softmax_bwd(self, y, dy, dx, rows, cols)
    }

    fn softmax_ce(
        &self,
        logits: &CpuStorage,
        labels: &CpuStorage,
        probs: &mut CpuStorage,
        row_loss: &mut CpuStorage,
        rows: usize,
        cols: usize,
    ) -> Result<()> {
        CpuBackend::softmax_ce(self, logits, labels, probs, row_loss, rows, cols)
    }

    fn softmax_ce_bwd(
        &self,
        probs: &CpuStorage,
        labels: &CpuStorage,
        dout: Option<&CpuStorage>,
        dx: &mut CpuStorage,
        rows: usize,
        cols: usize,
        scale: f32,
    ) -> Result<()> {
        CpuBackend::softmax_ce_bwd(self, probs, labels, dout, dx, rows, cols, scale)
    }

    fn im2col(&self, x: &CpuStorage, col: &mut CpuStorage, g: &Conv2dGeom) -> Result<()> {
        CpuBackend::im2col(self, x, col, g)
    }

    fn col2im(&self, col: &CpuStorage, x: &mut CpuStorage, g: &Conv2dGeom) -> Result<()> {
        CpuBackend::col2im(self, col, x, g)
    }

    fn max_pool(
        &self,
        x: &CpuStorage,
        out: &mut CpuStorage,
        idx: &mut CpuStorage,
        g: &Pool2dGeom,
    ) -> Result<()> {
        CpuBackend::max_pool(self, x, out, idx, g)
    }

    fn max_pool_bwd(
        &self,
        dy: &CpuStorage,
        idx: &CpuStorage,
        dx: &mut CpuStorage,
        g: &Pool2dGeom,
    ) -> Result<()> {
        CpuBackend::max_pool_bwd(self, dy, idx, dx, g)
    }

    fn argmax_rows(
        &self,
        x: &CpuStorage,
        out: &mut CpuStorage,
        rows: usize,
        cols: usize,
    ) -> Result<()> {
        CpuBackend::argmax_rows(self, x, out, rows, cols)
    }

    fn count_correct(
        &self,
        x: &CpuStorage,
        labels: &CpuStorage,
        out: &mut CpuStorage,
        rows: usize,
        cols: usize,
        accumulate: bool,
    ) -> Result<()> {
        CpuBackend::count_correct(self, x, labels, out, rows, cols, accumulate)
    }

    fn dropout_mask(&self, out: &mut CpuStorage, n: usize, spec: &DropoutSpec) -> Result<()> {
        CpuBackend::dropout_mask(self, out, n, spec)
    }

    fn fill_random(&self, out: &mut CpuStorage, n: usize, spec: &RandomSpec) -> Result<()> {
        CpuBackend::fill_random(self, out, n, spec)
    }

    fn sample_categorical(
        &self,
        x: &CpuStorage,
        out: &mut CpuStorage,
        rows: usize,
        cols: usize,
        seed: u32,
        offset: u32,
    ) -> Result<()> {
        CpuBackend::sample_categorical(self, x, out, rows, cols, seed, offset)
    }

    fn optim_update(
        &self,
        s: &OptimStep,
        w: &mut CpuStorage,
        g: &CpuStorage,
        s1: Option<&mut CpuStorage>,
        s2: Option<&mut CpuStorage>,
        guard: &CpuStorage,
        n: usize,
    ) -> Result<()> {
        CpuBackend::optim_update(self, s, w, g, s1, s2, guard, n)
    }

    fn scaler_init(&self, state: &mut CpuStorage, init_scale: f32) -> Result<()> {
        CpuBackend::scaler_init(self, state, init_scale)
    }

    fn scaler_scale(&self, x: &mut CpuStorage, state: &CpuStorage, n: usize) -> Result<()> {
        CpuBackend::scaler_scale(self, x, state, n)
    }

    fn scaler_check(&self, x: &CpuStorage, state: &mut CpuStorage, n: usize) -> Result<()> {
        CpuBackend::scaler_check(self, x, state, n)
    }

    fn scaler_update(&self, state: &mut CpuStorage, growth_interval: u32) -> Result<()> {
        CpuBackend::scaler_update(self, state, growth_interval)
    }

    fn gather_bytes(
        &self,
        src: &CpuStorage,
        perm: &CpuStorage,
        offset: usize,
        count: usize,
        row_len: usize,
        scale: f32,
        out: &mut CpuStorage,
    ) -> Result<()> {
        CpuBackend::gather_bytes(self, src, perm, offset, count, row_len, scale, out)
    }

    fn conv2d(
        &self,
        x: &CpuStorage,
        w: &CpuStorage,
        b: &CpuStorage,
        out: &mut CpuStorage,
        g: &Conv2dGeom,
        fout: usize,
    ) -> Result<()> {
        CpuBackend::conv2d(self, x, w, b, out, g, fout)
    }

    fn conv2d_bwd(
        &self,
        x: &CpuStorage,
        w: &CpuStorage,
        dout: &CpuStorage,
        dx: Option<&mut CpuStorage>,
        dw: &mut CpuStorage,
        db: &mut CpuStorage,
        g: &Conv2dGeom,
        fout: usize,
    ) -> Result<()> {
        CpuBackend::conv2d_bwd(self, x, w, dout, dx, dw, db, g, fout)
    }

    fn conv2d_input_grad(
        &self,
        w: &CpuStorage,
        dout: &CpuStorage,
        dx: &mut CpuStorage,
        g: &Conv2dGeom,
        fout: usize,
    ) -> Result<()> {
        CpuBackend::conv2d_input_grad(self, w, dout, dx, g, fout)
    }

    fn gather_rows(
        &self,
        table: &CpuStorage,
        idx: &CpuStorage,
        out: &mut CpuStorage,
        count: usize,
        row_len: usize,
    ) -> Result<()> {
        CpuBackend::gather_rows(self, table, idx, out, count, row_len)
    }

    fn one_hot(
        &self,
        idx: &CpuStorage,
        out: &mut CpuStorage,
        count: usize,
        classes: usize,
    ) -> Result<()> {
        CpuBackend::one_hot(self, idx, out, count, classes)
    }

    fn bn_stats(
        &self,
        x: &CpuStorage,
        saved: &mut CpuStorage,
        var: &mut CpuStorage,
        g: &BnGeom,
    ) -> Result<()> {
        CpuBackend::bn_stats(self, x, saved, var, g)
    }

    fn bn_apply(
        &self,
        x: &CpuStorage,
        saved: &CpuStorage,
        gamma: &CpuStorage,
        beta: &CpuStorage,
        y: &mut CpuStorage,
        g: &BnGeom,
    ) -> Result<()> {
        CpuBackend::bn_apply(self, x, saved, gamma, beta, y, g)
    }

    fn bn_bwd_reduce(
        &self,
        x: &CpuStorage,
        dy: &CpuStorage,
        saved: &CpuStorage,
        dgamma: &mut CpuStorage,
        dbeta: &mut CpuStorage,
        g: &BnGeom,
    ) -> Result<()> {
        CpuBackend::bn_bwd_reduce(self, x, dy, saved, dgamma, dbeta, g)
    }

    fn bn_bwd_dx(
        &self,
        x: &CpuStorage,
        dy: &CpuStorage,
        saved: &CpuStorage,
        gamma: &CpuStorage,
        dgamma: &CpuStorage,
        dbeta: &CpuStorage,
        dx: &mut CpuStorage,
        g: &BnGeom,
    ) -> Result<()> {
        CpuBackend::bn_bwd_dx(self, x, dy, saved, gamma, dgamma, dbeta, dx, g)
    }

    fn resize_bilinear(
        &self,
        x: &CpuStorage,
        out: &mut CpuStorage,
        planes: usize,
        h: usize,
        w: usize,
        oh: usize,
        ow: usize,
    ) -> Result<()> {
        CpuBackend::resize_bilinear(self, x, out, planes, h, w, oh, ow)
    }

    fn augment(
        &self,
        x: &CpuStorage,
        out: &mut CpuStorage,
        n: usize,
        c: usize,
        h: usize,
        w: usize,
        spec: &AugmentSpec,
    ) -> Result<()> {
        CpuBackend::augment(self, x, out, n, c, h, w, spec)
    }

    fn copy_block(&self, src: &CpuStorage, dst: &mut CpuStorage, b: &BlockCopy) -> Result<()> {
        CpuBackend::copy_block(self, src, dst, b)
    }

    fn pointwise(
        &self,
        op: &PointwiseOp,
        ins: &[&CpuStorage],
        out: &mut CpuStorage,
        walk: &Strided,
    ) -> Result<()> {
        CpuBackend::pointwise(self, op, ins, out, walk)
    }

    fn extreme_rows(
        &self,
        x: &CpuStorage,
        values: &mut CpuStorage,
        indices: &mut CpuStorage,
        rows: usize,
        cols: usize,
        min: bool,
    ) -> Result<()> {
        const OP: &str = "max/min over a dim";
        index::extreme_rows(
            &x.f32s(OP)?[..rows * cols],
            &mut values.f32s_mut(OP)?[..rows],
            &mut indices.u32s_mut(OP)?[..rows],
            cols,
            min,
        );
        Ok(())
    }

    fn index_select(
        &self,
        x: &CpuStorage,
        idx: &CpuStorage,
        out: &mut CpuStorage,
        g: &IndexGeom,
    ) -> Result<()> {
        const OP: &str = "index_select";
        index::index_select(x.f32s(OP)?, idx.u32s(OP)?, out.f32s_mut(OP)?, g)
    }

    fn index_select_bwd(
        &self,
        dy: &CpuStorage,
        idx: &CpuStorage,
        dx: &mut CpuStorage,
        g: &IndexGeom,
    ) -> Result<()> {
        const OP: &str = "index_select_backward";
        index::index_select_bwd(dy.f32s(OP)?, idx.u32s(OP)?, dx.f32s_mut(OP)?, g)
    }

    fn gather(
        &self,
        x: &CpuStorage,
        idx: &CpuStorage,
        out: &mut CpuStorage,
        g: &IndexGeom,
    ) -> Result<()> {
        const OP: &str = "gather";
        index::gather(x.f32s(OP)?, idx.u32s(OP)?, out.f32s_mut(OP)?, g)
    }

    fn gather_bwd(
        &self,
        dy: &CpuStorage,
        idx: &CpuStorage,
        dx: &mut CpuStorage,
        g: &IndexGeom,
    ) -> Result<()> {
        const OP: &str = "gather_backward";
        index::gather_bwd(dy.f32s(OP)?, idx.u32s(OP)?, dx.f32s_mut(OP)?, g)
    }

    fn bmm(&self, a: &CpuStorage, b: &CpuStorage, c: &mut CpuStorage, s: &BmmSpec) -> Result<()> {
        CpuBackend::bmm(self, a, b, c, s)
    }

    fn rnn_cell(&self, s: &RnnStep, bufs: RnnCellFwd<'_, CpuStorage>) -> Result<()> {
        CpuBackend::rnn_cell(self, s, bufs)
    }

    fn rnn_cell_bwd(&self, s: &RnnStep, bufs: RnnCellBwd<'_, CpuStorage>) -> Result<()> {
        CpuBackend::rnn_cell_bwd(self, s, bufs)
    }

    fn rnn_layer(&self, s: &RnnStep, bufs: RnnLayerFwd<'_, CpuStorage>) -> Result<()> {
        CpuBackend::rnn_layer(self, s, bufs)
    }

    fn rnn_layer_bwd(&self, s: &RnnStep, bufs: RnnLayerBwd<'_, CpuStorage>) -> Result<()> {
        CpuBackend::rnn_layer_bwd(self, s, bufs)
    }

    fn transpose(
        &self,
        x: &CpuStorage,
        out: &mut CpuStorage,
        batch: usize,
        rows: usize,
        cols: usize,
    ) -> Result<()> {
        CpuBackend::transpose(self, x, out, batch, rows, cols)
    }
}
