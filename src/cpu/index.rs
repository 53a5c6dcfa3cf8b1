//! The CPU index ops and pick-one reductions (`shaders/index.wgsl`'s twins): index_select,
//! gather and their scatter-add backwards over an `[outer, size, inner]` view, and the max /
//! min of each row with its index.

use crate::error::{Error, Result};
use crate::ops::IndexGeom;

fn bad_index(op: &'static str, at: usize, v: u32, size: usize) -> Error {
    Error::invalid(
        op,
        format!("index {v} at position {at} is out of range for a dim of size {size}"),
    )
}

/// `out[o, k, i] = x[o, idx[k], i]`.
pub(crate) fn index_select(x: &[f32], idx: &[u32], out: &mut [f32], g: &IndexGeom) -> Result<()> {
    const OP: &str = "index_select";
    for (k, &d) in idx[..g.count].iter().enumerate() {
        if d as usize >= g.size {
            return Err(bad_index(OP, k, d, g.size));
        }
    }
    for o in 0..g.outer {
        for (k, &d) in idx[..g.count].iter().enumerate() {
            let src = (o * g.size + d as usize) * g.inner;
            let dst = (o * g.count + k) * g.inner;
            out[dst..dst + g.inner].copy_from_slice(&x[src..src + g.inner]);
        }
    }
    Ok(())
}

/// `dx[o, d, i] = Σ_{k: idx[k] = d} dy[o, k, i]`.
pub(crate) fn index_select_bwd(
    dy: &[f32],
    idx: &[u32],
    dx: &mut [f32],
    g: &IndexGeom,
) -> Result<()> {
    const OP: &str = "index_select_backward";
    dx[..g.outer * g.size * g.inner].fill(0.0);
    for o in 0..g.outer {
        for (k, &d) in idx[..g.count].iter().enumerate() {
            if d as usize >= g.size {
                return Err(bad_index(OP, k, d, g.size));
            }
            let src = (o * g.count + k) * g.inner;
            let dst = (o * g.size + d as usize) * g.inner;
            for i in 0..g.inner {
                dx[dst + i] += dy[src + i];
            }
        }
    }
    Ok(())
}

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
