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
    AugmentSpec, Backend, BlockCopy, BmmSpec, BnGeom, Conv2dGeom, DropoutSpec, IndexGeom,
    MatmulSpec, OptimKind, OptimStep, PointwiseOp, Pool2dGeom, Strided,
};
use crate::rng::counter_uniform;
use half::f16;
use ndarray::{ArrayView3, ArrayViewMut3};
use rayon::prelude::*;

#[cfg(target_arch = "x86_64")]
mod avx512;
mod direct;
mod gemm;
mod index;
pub(crate) mod pointwise;

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

    pub(crate) fn zeros(dtype: DType, n: usize) -> CpuStorage {
        match dtype {
            DType::F32 => CpuStorage::F32(vec![0.0; n]),
            DType::F16 => CpuStorage::F16(vec![f16::ZERO; n]),
            DType::U32 => CpuStorage::U32(vec![0; n]),
        }
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

fn label_at(labels: &[u32], row: usize, cols: usize, op: &'static str) -> Result<usize> {
    let t = labels[row] as usize;
    if t >= cols {
        return Err(Error::invalid(
            op,
            format!("label {t} at row {row} is out of range for {cols} classes"),
        ));
    }
    Ok(t)
}

impl Backend for CpuBackend {
    type Buf = CpuStorage;

    fn alloc(&self, numel: usize, dtype: DType, _what: &str) -> Result<CpuStorage> {
        // Every op overwrites its whole output (as on the GPU), so recycled contents are fine.
        Ok(match dtype {
            DType::F32 => CpuStorage::F32(pool::take_f32(numel)),
            DType::F16 => CpuStorage::F16(pool::take_f16(numel)),
            DType::U32 => CpuStorage::U32(pool::take_u32(numel)),
        })
    }

    fn matmul(
        &self,
        a: &CpuStorage,
        b: &CpuStorage,
        c: &mut CpuStorage,
        s: &MatmulSpec,
    ) -> Result<()> {
        const OP: &str = "matmul";
        let (a, b, c) = (a.f32s(OP)?, b.f32s(OP)?, c.f32s_mut(OP)?);
        if a.len() < s.m * s.k || b.len() < s.k * s.n || c.len() < s.m * s.n {
            return Err(Error::invalid(OP, format!("buffers too small for {s:?}")));
        }
        // Stored layouts as strides, so op(A) and op(B) are read in place.
        let am = if s.trans_a {
            Mat {
                data: a,
                rs: 1,
                cs: s.m,
            }
        } else {
            Mat {
                data: a,
                rs: s.k,
                cs: 1,
            }
        };
        let bm = if s.trans_b {
            Mat {
                data: b,
                rs: 1,
                cs: s.k,
            }
        } else {
            Mat {
                data: b,
                rs: s.n,
                cs: 1,
            }
        };
        if s.beta == 0.0 {
            c[..s.m * s.n].fill(0.0); // never read a previous C (it may hold NaN)
        }
        if s.k == 0 {
            c[..s.m * s.n].iter_mut().for_each(|v| *v *= s.beta);
            return Ok(());
        }
        gemm(s.m, s.k, s.n, s.alpha, am, bm, s.beta, c);
        Ok(())
    }

    fn axpy(&self, alpha: f32, x: &CpuStorage, y: &mut CpuStorage, n: usize) -> Result<()> {
        let (x, y) = (&x.f32s("axpy")?[..n], &mut y.f32s_mut("axpy")?[..n]);
        par_elementwise(y, x, |y, x| {
            y.iter_mut().zip(x).for_each(|(y, &x)| *y += alpha * x)
        });
        Ok(())
    }

    fn fill(&self, out: &mut CpuStorage, value: f32, n: usize) -> Result<()> {
        out.f32s_mut("fill")?[..n].fill(value);
        Ok(())
    }

    fn sum_rows(
        &self,
        x: &CpuStorage,
        out: &mut CpuStorage,
        rows: usize,
        cols: usize,
        alpha: f32,
    ) -> Result<()> {
        let (x, o) = (x.f32s("sum_rows")?, &mut out.f32s_mut("sum_rows")?[..cols]);
        o.fill(0.0);
        for row in x[..rows * cols].chunks_exact(cols) {
            o.iter_mut().zip(row).for_each(|(o, &v)| *o += v);
        }
        o.iter_mut().for_each(|o| *o *= alpha);
        Ok(())
    }

    fn sum_cols(
        &self,
        x: &CpuStorage,
        out: &mut CpuStorage,
        rows: usize,
        cols: usize,
        alpha: f32,
    ) -> Result<()> {
        let (x, o) = (x.f32s("sum_cols")?, out.f32s_mut("sum_cols")?);
        for (o, row) in o[..rows]
            .iter_mut()
            .zip(x[..rows * cols].chunks_exact(cols))
        {
            *o = alpha * gemm::sum_f64(row) as f32;
        }
        Ok(())
    }

    fn softmax(
        &self,
        x: &CpuStorage,
        out: &mut CpuStorage,
        rows: usize,
        cols: usize,
    ) -> Result<()> {
        let (x, o) = (x.f32s("softmax")?, out.f32s_mut("softmax")?);
        for (orow, xrow) in o[..rows * cols]
            .chunks_exact_mut(cols)
            .zip(x.chunks_exact(cols))
        {
            let m = xrow.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let mut s = 0.0f32;
            for (o, &v) in orow.iter_mut().zip(xrow) {
                *o = (v - m).exp();
                s += *o;
            }
            orow.iter_mut().for_each(|o| *o /= s);
        }
        Ok(())
    }

    fn softmax_bwd(
        &self,
        y: &CpuStorage,
        dy: &CpuStorage,
        dx: &mut CpuStorage,
        rows: usize,
        cols: usize,
    ) -> Result<()> {
        let (y, dy, dx) = (
            y.f32s("softmax_bwd")?,
            dy.f32s("softmax_bwd")?,
            dx.f32s_mut("softmax_bwd")?,
        );
        for r in 0..rows {
            let sl = r * cols..(r + 1) * cols;
            let dot: f32 = y[sl.clone()]
                .iter()
                .zip(&dy[sl.clone()])
                .map(|(a, b)| a * b)
                .sum();
            for i in sl {
                dx[i] = y[i] * (dy[i] - dot);
            }
        }
        Ok(())
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
        const OP: &str = "softmax_cross_entropy";
        let labels = labels.u32s(OP)?;
        self.softmax(logits, probs, rows, cols)?;
        let (x, loss) = (logits.f32s(OP)?, row_loss.f32s_mut(OP)?);
        for r in 0..rows {
            let t = label_at(labels, r, cols, OP)?;
            let row = &x[r * cols..(r + 1) * cols];
            let m = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let log_sum = row.iter().map(|&v| (v - m).exp()).sum::<f32>().ln();
            // (m - x[t]) first: exact for large logits, where m + log_sum would round.
            loss[r] = log_sum + (m - row[t]);
        }
        Ok(())
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
        const OP: &str = "softmax_cross_entropy_backward";
        let scale = match dout {
            Some(d) => scale * d.f32s(OP)?.first().copied().unwrap_or(0.0),
            None => scale,
        };
        let (p, labels, dx) = (probs.f32s(OP)?, labels.u32s(OP)?, dx.f32s_mut(OP)?);
        for r in 0..rows {
            let t = label_at(labels, r, cols, OP)?;
            for c in 0..cols {
                let i = r * cols + c;
                dx[i] = (p[i] - if c == t { 1.0 } else { 0.0 }) * scale;
            }
        }
        Ok(())
    }

    fn im2col(&self, x: &CpuStorage, col: &mut CpuStorage, g: &Conv2dGeom) -> Result<()> {
        let (x, col) = (x.f32s("im2col")?, col.f32s_mut("im2col")?);
        let (oh, ow, ncols) = (g.out_h(), g.out_w(), g.col_cols());
        for n in 0..g.n {
            for oy in 0..oh {
                for ox in 0..ow {
                    let row = &mut col[((n * oh + oy) * ow + ox) * ncols..][..ncols];
                    let mut j = 0;
                    for c in 0..g.c {
                        let plane = &x[(n * g.c + c) * g.h * g.w..][..g.h * g.w];
                        for ky in 0..g.kh {
                            let iy = (oy * g.stride + ky) as isize - g.pad as isize;
                            for kx in 0..g.kw {
                                let ix = (ox * g.stride + kx) as isize - g.pad as isize;
                                row[j] = if iy >= 0
                                    && ix >= 0
                                    && (iy as usize) < g.h
                                    && (ix as usize) < g.w
                                {
                                    plane[iy as usize * g.w + ix as usize]
                                } else {
                                    0.0
                                };
                                j += 1;
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn col2im(&self, col: &CpuStorage, x: &mut CpuStorage, g: &Conv2dGeom) -> Result<()> {
        let (col, x) = (col.f32s("col2im")?, x.f32s_mut("col2im")?);
        let (oh, ow, ncols) = (g.out_h(), g.out_w(), g.col_cols());
        x[..g.n * g.c * g.h * g.w].fill(0.0);
        for n in 0..g.n {
            for oy in 0..oh {
                for ox in 0..ow {
                    let row = &col[((n * oh + oy) * ow + ox) * ncols..][..ncols];
                    let mut j = 0;
                    for c in 0..g.c {
                        let plane = &mut x[(n * g.c + c) * g.h * g.w..][..g.h * g.w];
                        for ky in 0..g.kh {
                            let iy = (oy * g.stride + ky) as isize - g.pad as isize;
                            for kx in 0..g.kw {
                                let ix = (ox * g.stride + kx) as isize - g.pad as isize;
                                if iy >= 0 && ix >= 0 && (iy as usize) < g.h && (ix as usize) < g.w
                                {
                                    plane[iy as usize * g.w + ix as usize] += row[j];
                                }
                                j += 1;
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn max_pool(
        &self,
        x: &CpuStorage,
        out: &mut CpuStorage,
        idx: &mut CpuStorage,
        g: &Pool2dGeom,
    ) -> Result<()> {
        let (x, out, idx) = (
            x.f32s("max_pool2d")?,
            out.f32s_mut("max_pool2d")?,
            idx.u32s_mut("max_pool2d")?,
        );
        let (oh, ow) = (g.out_h(), g.out_w());
        let planes = g.n * g.c;
        // Planes are independent: split them across the rayon pool.
        out[..planes * oh * ow]
            .par_chunks_mut(oh * ow)
            .zip(idx[..planes * oh * ow].par_chunks_mut(oh * ow))
            .enumerate()
            .for_each(|(plane, (out, idx))| {
                let base = plane * g.h * g.w;
                let src = &x[base..base + g.h * g.w];
                if (g.ph, g.pw, g.stride, g.pad) == (2, 2, 2, 0) {
                    return max_pool_2x2(src, base, g.w, ow, out, idx);
                }
                // The window's rows and columns inside the image (padding taps skipped), so
                // the inner loops test nothing but the comparison. The first maximum in
                // row-major window order wins, as on the GPU.
                let inside = |o: usize, k: usize, len: usize| {
                    let lo = (o * g.stride).max(g.pad) - g.pad;
                    let hi = (o * g.stride + k).min(len + g.pad).saturating_sub(g.pad);
                    lo..hi.max(lo)
                };
                for oy in 0..oh {
                    let rows = inside(oy, g.ph, g.h);
                    for ox in 0..ow {
                        let cols = inside(ox, g.pw, g.w);
                        let mut best = f32::NEG_INFINITY;
                        let mut best_i = usize::MAX;
                        for iy in rows.clone() {
                            let line = &src[iy * g.w..(iy + 1) * g.w];
                            for ix in cols.clone() {
                                let v = line[ix];
                                if best_i == usize::MAX || v > best {
                                    best = v;
                                    best_i = iy * g.w + ix;
                                }
                            }
                        }
                        let o = oy * ow + ox;
                        out[o] = best;
                        idx[o] = if best_i == usize::MAX {
                            u32::MAX // an all-padding window (the GPU's sentinel too)
                        } else {
                            (base + best_i) as u32
                        };
                    }
                }
            });
        Ok(())
    }

    fn max_pool_bwd(
        &self,
        dy: &CpuStorage,
        idx: &CpuStorage,
        dx: &mut CpuStorage,
        g: &Pool2dGeom,
    ) -> Result<()> {
        let (dy, idx, dx) = (
            dy.f32s("max_pool2d_backward")?,
            idx.u32s("max_pool2d_backward")?,
            dx.f32s_mut("max_pool2d_backward")?,
        );
        // Every window lies in one plane, so planes scatter in parallel; an index outside
        // its own plane is an error (it would be a race, or an index past the input).
        let (plane, oplane) = (g.h * g.w, g.out_h() * g.out_w());
        let planes = g.n * g.c;
        let bad: Option<(usize, usize)> = dx[..planes * plane]
            .par_chunks_mut(plane)
            .zip(idx[..planes * oplane].par_chunks(oplane))
            .zip(dy[..planes * oplane].par_chunks(oplane))
            .enumerate()
            .map(|(p, ((dx, idx), dy))| {
                dx.fill(0.0);
                let base = p * plane;
                for (&i, &d) in idx.iter().zip(dy) {
                    match (i as usize).checked_sub(base).filter(|&j| j < plane) {
                        Some(j) => dx[j] += d,
                        None => return Some((i as usize, p)),
                    }
                }
                None
            })
            .find_first(Option::is_some)
            .flatten();
        match bad {
            None => Ok(()),
            Some((i, p)) => Err(Error::invalid(
                "max_pool2d_backward",
                format!(
                    "argmax index {i} of plane {p} lies outside that plane's {plane} input \
                     elements (input of {} elements)",
                    planes * plane
                ),
            )),
        }
    }

    fn argmax_rows(
        &self,
        x: &CpuStorage,
        out: &mut CpuStorage,
        rows: usize,
        cols: usize,
    ) -> Result<()> {
        let (x, out) = (x.f32s("argmax_rows")?, out.u32s_mut("argmax_rows")?);
        for (o, row) in out[..rows].iter_mut().zip(x.chunks_exact(cols)) {
            *o = argmax(row) as u32;
        }
        Ok(())
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
        let (x, labels, out) = (
            x.f32s("count_correct")?,
            labels.u32s("count_correct")?,
            out.u32s_mut("count_correct")?,
        );
        let base = if accumulate { out[0] } else { 0 };
        out[0] = base
            + x[..rows * cols]
                .chunks_exact(cols)
                .zip(labels)
                .filter(|(row, t)| argmax(row) == **t as usize)
                .count() as u32;
        Ok(())
    }

    fn dropout_mask(&self, out: &mut CpuStorage, n: usize, spec: &DropoutSpec) -> Result<()> {
        let out = out.f32s_mut("dropout_mask")?;
        for (i, o) in out[..n].iter_mut().enumerate() {
            let u = counter_uniform(spec.seed, spec.offset.wrapping_add(i as u32));
            *o = if u >= spec.ratio { spec.scale } else { 0.0 };
        }
        Ok(())
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
        const OP: &str = "optimizer update";
        let guard = guard.u32s(OP)?;
        if guard.get(1).copied().unwrap_or(0) != 0 {
            return Ok(()); // the loss scaler saw a non-finite gradient: skip the step
        }
        let scale = f32::from_bits(guard[0]);
        let lr_t = s.adam_lr_t(guard.get(3).copied().unwrap_or(0));
        let need = s.kind.state_count();
        let have = s1.is_some() as usize + s2.is_some() as usize;
        if have < need {
            return Err(Error::invalid(
                OP,
                format!("{:?} needs {need} state tensors, got {have}", s.kind),
            ));
        }
        let (w, g) = (&mut w.f32s_mut(OP)?[..n], &g.f32s(OP)?[..n]);
        let mut s1 = match s1 {
            Some(b) => Some(&mut b.f32s_mut(OP)?[..n]),
            None => None,
        };
        let mut s2 = match s2 {
            Some(b) => Some(&mut b.f32s_mut(OP)?[..n]),
            None => None,
        };
        // The same expressions, in the same order, as shaders/optim.wgsl.
        for i in 0..n {
            let l2 = if s.kind == OptimKind::AdamW {
                0.0
            } else {
                s.weight_decay
            };
            let gi = g[i] / scale + l2 * w[i];
            match s.kind {
                OptimKind::Sgd => w[i] -= s.lr * gi,
                OptimKind::Momentum => {
                    let v = s1
                        .as_deref_mut()
                        .map(|v| &mut v[i])
                        .ok_or_else(|| Error::invalid(OP, "missing state"))?;
                    *v = s.beta1 * *v - s.lr * gi;
                    w[i] += *v;
                }
                OptimKind::Nesterov => {
                    let v = s1
                        .as_deref_mut()
                        .map(|v| &mut v[i])
                        .ok_or_else(|| Error::invalid(OP, "missing state"))?;
                    *v = s.beta1 * *v - s.lr * gi;
                    w[i] += s.beta1 * s.beta1 * *v - (1.0 + s.beta1) * s.lr * gi;
                }
                OptimKind::AdaGrad => {
                    let h = s1
                        .as_deref_mut()
                        .map(|v| &mut v[i])
                        .ok_or_else(|| Error::invalid(OP, "missing state"))?;
                    *h += gi * gi;
                    w[i] -= s.lr * gi / (h.sqrt() + s.eps);
                }
                OptimKind::RmsProp => {
                    let h = s1
                        .as_deref_mut()
                        .map(|v| &mut v[i])
                        .ok_or_else(|| Error::invalid(OP, "missing state"))?;
                    *h = s.beta1 * *h + (1.0 - s.beta1) * gi * gi;
                    w[i] -= s.lr * gi / (h.sqrt() + s.eps);
                }
                OptimKind::Adam | OptimKind::AdamW => {
                    let m = s1
                        .as_deref_mut()
                        .map(|v| &mut v[i])
                        .ok_or_else(|| Error::invalid(OP, "missing state"))?;
                    *m += (1.0 - s.beta1) * (gi - *m);
                    let mi = *m;
                    let v = s2
                        .as_deref_mut()
                        .map(|v| &mut v[i])
                        .ok_or_else(|| Error::invalid(OP, "missing state"))?;
                    *v += (1.0 - s.beta2) * (gi * gi - *v);
                    // AdamW's decoupled decay; × 1 leaves Adam's w bit for bit.
                    let keep = if s.kind == OptimKind::AdamW {
                        1.0 - s.lr * s.weight_decay
                    } else {
                        1.0
                    };
                    w[i] = w[i] * keep - lr_t * mi / (v.sqrt() + s.eps);
                }
            }
        }
        Ok(())
    }

    fn scaler_init(&self, state: &mut CpuStorage, init_scale: f32) -> Result<()> {
        state.u32s_mut("scaler")?[..4].copy_from_slice(&[init_scale.to_bits(), 0, 0, 0]);
        Ok(())
    }

    fn scaler_scale(&self, x: &mut CpuStorage, state: &CpuStorage, n: usize) -> Result<()> {
        let scale = f32::from_bits(state.u32s("scaler")?[0]);
        match x {
            CpuStorage::F32(v) => v[..n].iter_mut().for_each(|v| *v *= scale),
            CpuStorage::F16(v) => v[..n]
                .iter_mut()
                .for_each(|v| *v = f16::from_f32(v.to_f32() * scale)),
            other => {
                return Err(Error::DTypeMismatch {
                    op: "scaler",
                    expected: DType::F32,
                    got: other.dtype(),
                });
            }
        }
        Ok(())
    }

    fn scaler_check(&self, x: &CpuStorage, state: &mut CpuStorage, n: usize) -> Result<()> {
        let bad = match x {
            CpuStorage::F32(v) => v[..n].iter().any(|v| !v.is_finite()),
            CpuStorage::F16(v) => v[..n].iter().any(|v| !v.is_finite()),
            other => {
                return Err(Error::DTypeMismatch {
                    op: "scaler",
                    expected: DType::F32,
                    got: other.dtype(),
                });
            }
        };
        if bad {
            state.u32s_mut("scaler")?[1] = 1;
        }
        Ok(())
    }

    fn scaler_update(&self, state: &mut CpuStorage, growth_interval: u32) -> Result<()> {
        // The same steps as shaders/scaler.wgsl `update`.
        let st = state.u32s_mut("scaler")?;
        let mut scale = f32::from_bits(st[0]);
        if st[1] != 0 {
            scale *= 0.5;
            st[2] = 0;
            st[3] += 1;
        } else {
            st[2] += 1;
            if st[2] >= growth_interval {
                scale *= 2.0;
                st[2] = 0;
            }
        }
        st[0] = scale.to_bits();
        st[1] = 0;
        Ok(())
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
        const OP: &str = "gather_bytes";
        let (src, perm) = (src.u32s(OP)?, perm.u32s(OP)?);
        let rows = perm.get(offset..offset + count).ok_or_else(|| {
            Error::invalid(
                OP,
                format!(
                    "rows {offset}..{} of a permutation of {}",
                    offset + count,
                    perm.len()
                ),
            )
        })?;
        let total_rows = src.len() * 4 / row_len.max(1);
        if let Some(&bad) = rows.iter().find(|&&r| r as usize >= total_rows) {
            return Err(Error::invalid(
                OP,
                format!("row index {bad} out of range ({total_rows} rows)"),
            ));
        }
        match out {
            CpuStorage::F32(o) => {
                for (r, &row) in rows.iter().enumerate() {
                    let base = row as usize * row_len;
                    for (c, o) in o[r * row_len..][..row_len].iter_mut().enumerate() {
                        *o = byte_at(src, base + c) as f32 * scale;
                    }
                }
            }
            CpuStorage::U32(o) => {
                for (r, &row) in rows.iter().enumerate() {
                    let base = row as usize * row_len;
                    for (c, o) in o[r * row_len..][..row_len].iter_mut().enumerate() {
                        *o = byte_at(src, base + c);
                    }
                }
            }
            other => {
                return Err(Error::UnsupportedDType {
                    op: OP,
                    dtype: other.dtype(),
                    why: "as an output".into(),
                });
            }
        }
        Ok(())
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
        const OP: &str = "conv2d";
        gemm::conv2d_forward(
            x.f32s(OP)?,
            w.f32s(OP)?,
            b.f32s(OP)?,
            out.f32s_mut(OP)?,
            g,
            fout,
        );
        Ok(())
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
        const OP: &str = "conv2d_backward";
        gemm::conv2d_backward(
            x.f32s(OP)?,
            w.f32s(OP)?,
            dout.f32s(OP)?,
            dx.map(|d| d.f32s_mut(OP)).transpose()?,
            dw.f32s_mut(OP)?,
            db.f32s_mut(OP)?,
            g,
            fout,
        );
        Ok(())
    }

    fn gather_rows(
        &self,
        table: &CpuStorage,
        idx: &CpuStorage,
        out: &mut CpuStorage,
        count: usize,
        row_len: usize,
    ) -> Result<()> {
        const OP: &str = "embedding";
        let (t, idx, o) = (table.f32s(OP)?, idx.u32s(OP)?, out.f32s_mut(OP)?);
        let rows = t.len() / row_len.max(1);
        for (r, (&i, line)) in idx[..count]
            .iter()
            .zip(o.chunks_exact_mut(row_len))
            .enumerate()
        {
            let i = i as usize;
            if i >= rows {
                return Err(Error::invalid(
                    OP,
                    format!("index {i} at position {r} is outside the table's {rows} rows"),
                ));
            }
            line.copy_from_slice(&t[i * row_len..][..row_len]);
        }
        Ok(())
    }

    fn one_hot(
        &self,
        idx: &CpuStorage,
        out: &mut CpuStorage,
        count: usize,
        classes: usize,
    ) -> Result<()> {
        const OP: &str = "one_hot";
        let (idx, o) = (idx.u32s(OP)?, out.f32s_mut(OP)?);
        o[..count * classes].fill(0.0);
        for (r, &i) in idx[..count].iter().enumerate() {
            if (i as usize) < classes {
                o[r * classes + i as usize] = 1.0;
            }
        }
        Ok(())
    }

    fn bn_stats(
        &self,
        x: &CpuStorage,
        saved: &mut CpuStorage,
        var: &mut CpuStorage,
        g: &BnGeom,
    ) -> Result<()> {
        const OP: &str = "batch_norm";
        let (x, sv, v) = (x.f32s(OP)?, saved.f32s_mut(OP)?, var.f32s_mut(OP)?);
        let m = (g.n * g.s) as f64;
        for k in 0..g.c {
            let values = || (0..g.n).flat_map(move |i| x[(i * g.c + k) * g.s..][..g.s].iter());
            let mean = values().map(|&a| a as f64).sum::<f64>() / m;
            let var = values().map(|&a| (a as f64 - mean).powi(2)).sum::<f64>() / m;
            sv[k] = mean as f32;
            sv[g.c + k] = (1.0 / (var + g.eps as f64).sqrt()) as f32;
            v[k] = var as f32;
        }
        Ok(())
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
        const OP: &str = "batch_norm";
        let (x, sv, ga, be) = (
            x.f32s(OP)?,
            saved.f32s(OP)?,
            gamma.f32s(OP)?,
            beta.f32s(OP)?,
        );
        let y = &mut y.f32s_mut(OP)?[..g.n * g.c * g.s];
        for (row, (yo, xi)) in y.chunks_exact_mut(g.s).zip(x.chunks_exact(g.s)).enumerate() {
            let k = row % g.c;
            let (mean, inv, a, b) = (sv[k], sv[g.c + k], ga[k], be[k]);
            for (o, &v) in yo.iter_mut().zip(xi) {
                *o = (v - mean) * inv * a + b;
            }
        }
        Ok(())
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
        const OP: &str = "batch_norm_backward";
        let (x, dy, sv) = (x.f32s(OP)?, dy.f32s(OP)?, saved.f32s(OP)?);
        let (dg, db) = (dgamma.f32s_mut(OP)?, dbeta.f32s_mut(OP)?);
        let mut acc = vec![(0f64, 0f64); g.c];
        for (row, (xi, di)) in x.chunks_exact(g.s).zip(dy.chunks_exact(g.s)).enumerate() {
            let k = row % g.c;
            if row >= g.n * g.c {
                break;
            }
            let (mean, inv) = (sv[k], sv[g.c + k]);
            for (&v, &d) in xi.iter().zip(di) {
                acc[k].0 += d as f64 * ((v - mean) * inv) as f64;
                acc[k].1 += d as f64;
            }
        }
        for (k, (a, b)) in acc.into_iter().enumerate() {
            dg[k] = a as f32;
            db[k] = b as f32;
        }
        Ok(())
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
        const OP: &str = "batch_norm_backward";
        let (x, dy, sv, ga) = (x.f32s(OP)?, dy.f32s(OP)?, saved.f32s(OP)?, gamma.f32s(OP)?);
        let (dg, db) = (dgamma.f32s(OP)?, dbeta.f32s(OP)?);
        let dx = &mut dx.f32s_mut(OP)?[..g.n * g.c * g.s];
        let m = (g.n * g.s) as f32;
        let rows = dx
            .chunks_exact_mut(g.s)
            .zip(x.chunks_exact(g.s))
            .zip(dy.chunks_exact(g.s));
        for (row, ((o, xi), di)) in rows.enumerate() {
            let k = row % g.c;
            let (mean, inv) = (sv[k], sv[g.c + k]);
            let scale = ga[k] * inv / m;
            for ((o, &v), &d) in o.iter_mut().zip(xi).zip(di) {
                let xhat = (v - mean) * inv;
                *o = scale * (m * d - db[k] - xhat * dg[k]);
            }
        }
        Ok(())
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
        const OP: &str = "resize_bilinear";
        let (x, o) = (x.f32s(OP)?, out.f32s_mut(OP)?);
        // The same f32 expressions as shaders/layout.wgsl.
        let src = |o: usize, n_in: usize, n_out: usize| {
            let s = ((o as f32 + 0.5) * n_in as f32 / n_out as f32 - 0.5).max(0.0);
            let i0 = (s as usize).min(n_in - 1);
            (i0, (i0 + 1).min(n_in - 1), s - i0 as f32)
        };
        for (b, plane) in o[..planes * oh * ow].chunks_exact_mut(oh * ow).enumerate() {
            let xin = &x[b * h * w..][..h * w];
            for oy in 0..oh {
                let (y0, y1, wy) = src(oy, h, oh);
                for ox in 0..ow {
                    let (x0, x1, wx) = src(ox, w, ow);
                    let top = xin[y0 * w + x0] * (1.0 - wx) + xin[y0 * w + x1] * wx;
                    let bottom = xin[y1 * w + x0] * (1.0 - wx) + xin[y1 * w + x1] * wx;
                    plane[oy * ow + ox] = top * (1.0 - wy) + bottom * wy;
                }
            }
        }
        Ok(())
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
        const OP: &str = "augment";
        let (x, o) = (x.f32s(OP)?, out.f32s_mut(OP)?);
        let plane = h * w;
        let (cx, cy) = ((w as f32 - 1.0) * 0.5, (h as f32 - 1.0) * 0.5);
        let taps = elastic_taps(spec);
        // The same f32 expressions, in the same order, as shaders/augment.wgsl; images are
        // independent, so they are split across the rayon pool.
        let per_image = c * plane;
        o[..n * per_image]
            .par_chunks_mut(per_image)
            .enumerate()
            .for_each(|(img, o)| {
                let k = spec.offset.wrapping_add(img as u32);
                let field = elastic_field(spec, &taps, k, h, w);
                let d = spec.draws(k);
                let theta = d[0] * spec.rotate * 0.017_453_292;
                let s = 1.0 + d[1] * spec.scale;
                let (tx, ty) = (d[2] * spec.shift, d[3] * spec.shift);
                let flip = spec.flip && d[4] < 0.0;
                let (b, con) = (d[5] * spec.brightness, 1.0 + d[6] * spec.contrast);
                let (ct, st) = (theta.cos(), theta.sin());
                for ch in 0..c {
                    let base = (img * c + ch) * plane;
                    let o = &mut o[ch * plane..(ch + 1) * plane];
                    let px = |yy: i64, xx: i64| -> f32 {
                        if yy < 0 || xx < 0 || yy >= h as i64 || xx >= w as i64 {
                            0.0
                        } else {
                            x[base + yy as usize * w + xx as usize]
                        }
                    };
                    for y in 0..h {
                        for xo in 0..w {
                            let mut u = xo as f32 - cx;
                            if flip {
                                u = -u;
                            }
                            u -= tx;
                            let v = y as f32 - cy - ty;
                            let (ex, ey) = match &field {
                                Some(f) => (f[y * w + xo], f[plane + y * w + xo]),
                                None => (0.0, 0.0),
                            };
                            let sx = (ct * u + st * v) / s + cx + ex;
                            let sy = (ct * v - st * u) / s + cy + ey;
                            let (x0, y0) = (sx.floor(), sy.floor());
                            let (wx, wy) = (sx - x0, sy - y0);
                            let (xi, yi) = (x0 as i64, y0 as i64);
                            let top = px(yi, xi) * (1.0 - wx) + px(yi, xi + 1) * wx;
                            let bottom = px(yi + 1, xi) * (1.0 - wx) + px(yi + 1, xi + 1) * wx;
                            let val = top * (1.0 - wy) + bottom * wy;
                            o[y * w + xo] = ((val - 0.5) * con + 0.5 + b).clamp(0.0, 1.0);
                        }
                    }
                }
            });
        Ok(())
    }

    fn copy_block(&self, src: &CpuStorage, dst: &mut CpuStorage, b: &BlockCopy) -> Result<()> {
        const OP: &str = "copy_block";
        copy_block_slices(src.f32s(OP)?, dst.f32s_mut(OP)?, b);
        Ok(())
    }

    fn pointwise(
        &self,
        op: &PointwiseOp,
        ins: &[&CpuStorage],
        out: &mut CpuStorage,
        walk: &Strided,
    ) -> Result<()> {
        let name = op.f.name();
        let ins = ins
            .iter()
            .map(|s| s.f32s(name))
            .collect::<Result<Vec<&[f32]>>>()?;
        let n = walk.numel();
        let o = &mut out.f32s_mut(name)?[..n];
        op.f.run_cpu(op.a, op.b, &ins, o, walk);
        Ok(())
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
        const OP: &str = "bmm";
        let (a, b, c) = (a.f32s(OP)?, b.f32s(OP)?, c.f32s_mut(OP)?);
        let (mk, kn, mn) = (s.m * s.k, s.k * s.n, s.m * s.n);
        let last = s.batch.saturating_sub(1);
        if a.len() < last * s.stride_a + mk
            || b.len() < last * s.stride_b + kn
            || c.len() < s.batch * mn
        {
            return Err(Error::invalid(OP, format!("buffers too small for {s:?}")));
        }
        for i in 0..s.batch {
            let (a, b) = (&a[i * s.stride_a..], &b[i * s.stride_b..]);
            let c = &mut c[i * mn..(i + 1) * mn];
            let am = if s.trans_a {
                Mat {
                    data: a,
                    rs: 1,
                    cs: s.m,
                }
            } else {
                Mat {
                    data: a,
                    rs: s.k,
                    cs: 1,
                }
            };
            let bm = if s.trans_b {
                Mat {
                    data: b,
                    rs: 1,
                    cs: s.k,
                }
            } else {
                Mat {
                    data: b,
                    rs: s.n,
                    cs: 1,
                }
            };
            c.fill(0.0);
            if s.k > 0 {
                gemm(s.m, s.k, s.n, 1.0, am, bm, 0.0, c);
            }
        }
        Ok(())
    }

    fn transpose(
        &self,
        x: &CpuStorage,
        out: &mut CpuStorage,
        batch: usize,
        rows: usize,
        cols: usize,
    ) -> Result<()> {
        const OP: &str = "transpose";
        let n = batch * rows * cols;
        let (x, o) = (&x.f32s(OP)?[..n], &mut out.f32s_mut(OP)?[..n]);
        let shape_err = |e: ndarray::ShapeError| Error::invalid(OP, e.to_string());
        let xv = ArrayView3::from_shape((batch, rows, cols), x).map_err(shape_err)?;
        let mut ov = ArrayViewMut3::from_shape((batch, cols, rows), o).map_err(shape_err)?;
        ov.assign(&xv.permuted_axes([0, 2, 1]));
        Ok(())
    }
}

/// The CPU [`BlockCopy`], on raw elements of any dtype.
/// The elastic field's normalised Gaussian taps `g(-r..=r)`, as `shaders/augment.wgsl`
/// computes them (`tap(d) / norm`); empty when the field is off.
fn elastic_taps(spec: &AugmentSpec) -> Vec<f32> {
    if !spec.elastic() {
        return Vec::new();
    }
    let r = spec.elastic_radius() as i64;
    let tap = |d: i64| {
        let t = d as f32 / spec.elastic_sigma;
        (-0.5 * t * t).exp()
    };
    let mut norm = 0.0f32;
    for d in -r..=r {
        norm += tap(d);
    }
    (-r..=r).map(|d| tap(d) / norm).collect()
}

/// Image `k`'s elastic displacement `[2, h, w]` (x then y, in pixels), or `None` when off: the
/// kernel's two passes (`elastic_rows`, then the vertical sum in `augment_elastic`).
fn elastic_field(spec: &AugmentSpec, taps: &[f32], k: u32, h: usize, w: usize) -> Option<Vec<f32>> {
    if taps.is_empty() {
        return None;
    }
    let r = spec.elastic_radius();
    let (ph, pw) = (h + 2 * r, w + 2 * r);
    // The kernel hashes each tap's noise where it needs it; here each padded pixel's noise
    // is drawn once (the same values, summed in the same order).
    let noise: Vec<f32> = (0..2 * ph * pw)
        .map(|idx| spec.elastic_noise(k, idx as u32))
        .collect();
    let mut rows = vec![0.0f32; 2 * ph * w];
    for (i, out) in rows.iter_mut().enumerate() {
        let (xo, yy, dir) = (i % w, (i / w) % ph, i / (w * ph));
        let line = &noise[(dir * ph + yy) * pw + xo..][..taps.len()];
        let mut s = 0.0f32;
        for (g, v) in taps.iter().zip(line) {
            s += g * v;
        }
        *out = s;
    }
    let mut field = vec![0.0f32; 2 * h * w];
    for y in 0..h {
        for xo in 0..w {
            let (mut dx, mut dy) = (0.0f32, 0.0f32);
            for (j, g) in taps.iter().enumerate() {
                let yy = y + j;
                dx += g * rows[yy * w + xo];
                dy += g * rows[(ph + yy) * w + xo];
            }
            field[y * w + xo] = spec.elastic_alpha * dx;
            field[h * w + y * w + xo] = spec.elastic_alpha * dy;
        }
    }
    Some(field)
}

fn copy_block_slices<T: Copy>(src: &[T], dst: &mut [T], b: &BlockCopy) {
    for o in 0..b.outer {
        let s = (o * b.src_dim + b.src_off) * b.inner;
        let d = (o * b.dst_dim + b.dst_off) * b.inner;
        let n = b.len * b.inner;
        dst[d..d + n].copy_from_slice(&src[s..s + n]);
    }
}

/// One plane of a 2×2 max-pool with stride 2 and no padding: the four window values compared
/// in row-major order, the first maximum winning (as the general loop and the GPU).
fn max_pool_2x2(src: &[f32], base: usize, w: usize, ow: usize, out: &mut [f32], idx: &mut [u32]) {
    for (oy, (out, idx)) in out
        .chunks_exact_mut(ow)
        .zip(idx.chunks_exact_mut(ow))
        .enumerate()
    {
        let top = 2 * oy * w;
        let (r0, r1) = (&src[top..top + w], &src[top + w..top + 2 * w]);
        for (ox, (o, i)) in out.iter_mut().zip(idx.iter_mut()).enumerate() {
            let x = 2 * ox;
            let (mut best, mut at) = (r0[x], top + x);
            for (v, j) in [
                (r0[x + 1], top + x + 1),
                (r1[x], top + w + x),
                (r1[x + 1], top + w + x + 1),
            ] {
                if v > best {
                    best = v;
                    at = j;
                }
            }
            *o = best;
            *i = (base + at) as u32;
        }
    }
}

/// Elements per task of the parallel elementwise ops: large enough that rayon's hand-off
/// costs nothing next to the work; slices below two of them run on the calling thread.
const ELEMENTWISE_CHUNK: usize = 1 << 15;

/// `f` over matching chunks of `o` and `x`, split across the rayon pool when they are large.
/// Each element is computed by the same code on any thread count.
fn par_elementwise(o: &mut [f32], x: &[f32], f: impl Fn(&mut [f32], &[f32]) + Sync) {
    if o.len() < 2 * ELEMENTWISE_CHUNK {
        f(o, x);
    } else {
        o.par_chunks_mut(ELEMENTWISE_CHUNK)
            .zip(x.par_chunks(ELEMENTWISE_CHUNK))
            .for_each(|(o, x)| f(o, x));
    }
}

/// Byte `i` of a byte array packed little-endian four to a u32 (as `shaders/data.wgsl`).
fn byte_at(words: &[u32], i: usize) -> u32 {
    (words[i >> 2] >> ((i & 3) * 8)) & 0xff
}

/// Index of the first maximum.
fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best
}
