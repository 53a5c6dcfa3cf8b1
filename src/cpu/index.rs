//! The CPU index ops and pick-one reductions (`shaders/index.wgsl`'s twins): index_select,
//! gather and their scatter-add backwards over an `[outer, size, inner]` view, and the max /
//! min of each row with its index.

use crate::error::{Error, Result};
use crate::ops::IndexGeom;
use rayon::prelude::*;

fn bad_index(op: &'static str, at: usize, v: u32, size: usize) -> Error {
    Error::invalid(
        op,
        format!("index {v} at position {at} is out of range for a dim of size {size}"),
    )
}

/// Elements from which index_select and its backward split their work across the rayon pool
/// (an embedding lookup of a batch of sequences moves megabytes).
const PARALLEL_MIN: usize = 1 << 16;

/// `out[o, k, i] = x[o, idx[k], i]`.
pub(crate) fn index_select(x: &[f32], idx: &[u32], out: &mut [f32], g: &IndexGeom) -> Result<()> {
    const OP: &str = "index_select";
    for (k, &d) in idx[..g.count].iter().enumerate() {
        if d as usize >= g.size {
            return Err(bad_index(OP, k, d, g.size));
        }
    }
    let rows = &mut out[..g.outer * g.count * g.inner];
    // Row `o · count + k` of `out` is row `o · size + idx[k]` of `x`.
    let copy = |(r, dst): (usize, &mut [f32])| {
        let (o, k) = (r / g.count, r % g.count);
        let src = (o * g.size + idx[k] as usize) * g.inner;
        dst.copy_from_slice(&x[src..src + g.inner]);
    };
    if g.inner == 0 {
        return Ok(());
    }
    match rows.len() >= PARALLEL_MIN {
        true => rows.par_chunks_mut(g.inner).enumerate().for_each(copy),
        false => rows.chunks_mut(g.inner).enumerate().for_each(copy),
    }
    Ok(())
}

/// `dx[o, d, i] = Σ_{k: idx[k] = d} dy[o, k, i]`, each sum in the order of k (the columns `i`
/// are split across the pool, so the result does not depend on the thread count).
pub(crate) fn index_select_bwd(
    dy: &[f32],
    idx: &[u32],
    dx: &mut [f32],
    g: &IndexGeom,
) -> Result<()> {
    const OP: &str = "index_select_backward";
    for (k, &d) in idx[..g.count].iter().enumerate() {
        if d as usize >= g.size {
            return Err(bad_index(OP, k, d, g.size));
        }
    }
    dx[..g.outer * g.size * g.inner].fill(0.0);
    // Bands of columns, each summing its columns of every row for every o and k: one band
    // when the work is small, else one per thread (disjoint, written through a raw pointer
    // that the tasks share).
    let threads = rayon::current_num_threads();
    let parallel =
        threads > 1 && g.outer * g.count * g.inner >= PARALLEL_MIN && g.inner >= 64 * threads;
    let per = match parallel {
        true => g.inner.div_ceil(threads).next_multiple_of(16),
        false => g.inner.max(1),
    };
    let base = SendPtr(dx.as_mut_ptr(), dx.len());
    let band = |b: usize| {
        let (i0, i1) = (b * per, ((b + 1) * per).min(g.inner));
        let ptr = base;
        for o in 0..g.outer {
            for (k, &d) in idx[..g.count].iter().enumerate() {
                let src = (o * g.count + k) * g.inner;
                let dst = (o * g.size + d as usize) * g.inner;
                assert!(dst + i1 <= ptr.1, "index_select_backward: a row past dx");
                // SAFETY: in bounds (asserted); columns i0..i1 of every row of dx belong to
                // this band alone, and `dx` is borrowed mutably for the call.
                let row = unsafe { std::slice::from_raw_parts_mut(ptr.0.add(dst + i0), i1 - i0) };
                for (v, &u) in row.iter_mut().zip(&dy[src + i0..src + i1]) {
                    *v += u;
                }
            }
        }
    };
    match parallel {
        true => (0..g.inner.div_ceil(per)).into_par_iter().for_each(band),
        false => band(0),
    }
    Ok(())
}

/// A pointer to dx and its length, shared by tasks that write disjoint columns of it.
#[derive(Clone, Copy)]
struct SendPtr(*mut f32, usize);
// SAFETY: only dereferenced for disjoint column bands, one per task.
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

/// `out[o, j, i] = x[o, idx[o, j, i], i]`.
pub(crate) fn gather(x: &[f32], idx: &[u32], out: &mut [f32], g: &IndexGeom) -> Result<()> {
    for o in 0..g.outer {
        for j in 0..g.count {
            for i in 0..g.inner {
                let at = (o * g.count + j) * g.inner + i;
                let d = idx[at] as usize;
                if d >= g.size {
                    return Err(bad_index("gather", at, idx[at], g.size));
                }
                out[at] = x[(o * g.size + d) * g.inner + i];
            }
        }
    }
    Ok(())
}

/// The scatter-add backward of [`gather`].
pub(crate) fn gather_bwd(dy: &[f32], idx: &[u32], dx: &mut [f32], g: &IndexGeom) -> Result<()> {
    dx[..g.outer * g.size * g.inner].fill(0.0);
    for o in 0..g.outer {
        for j in 0..g.count {
            for i in 0..g.inner {
                let at = (o * g.count + j) * g.inner + i;
                let d = idx[at] as usize;
                if d >= g.size {
                    return Err(bad_index("gather_backward", at, idx[at], g.size));
                }
                dx[(o * g.size + d) * g.inner + i] += dy[at];
            }
        }
    }
    Ok(())
}

/// Per row: the max (or min) and the first index where it occurs; NaN wins, as in PyTorch.
pub(crate) fn extreme_rows(
    x: &[f32],
    values: &mut [f32],
    indices: &mut [u32],
    cols: usize,
    min: bool,
) {
    for (r, (v, i)) in values.iter_mut().zip(indices.iter_mut()).enumerate() {
        let row = &x[r * cols..(r + 1) * cols];
        let mut best = 0;
        for (c, &e) in row.iter().enumerate().skip(1) {
            let b = row[best];
            let better = if b.is_nan() {
                false
            } else if e.is_nan() {
                true
            } else if min {
                e < b
            } else {
                e > b
            };
            if better {
                best = c;
            }
        }
        *v = row[best];
        *i = best as u32;
    }
}
