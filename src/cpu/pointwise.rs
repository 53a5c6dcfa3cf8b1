//! The CPU side of the pointwise ops (`src/ops/pointwise.rs`): one walk over a [`Strided`]
//! layout, instantiated per op with the op's body, split over rayon's threads in chunks.

use super::*;
use crate::ops::pointwise::{MAX_INPUTS, MAX_RANK, Strided};

/// Output elements per rayon task.
const CHUNK: usize = 1 << 15;

/// `out[i] = f(ins at i)` for every output element `i` of `walk`. `ins` has 1 to 3 slices;
/// the flat case (every input contiguous or one broadcast value) is a plain indexed loop so it
/// vectorises, the general case walks the dims with an odometer.
pub(crate) fn walk<F>(ins: &[&[f32]], out: &mut [f32], walk: &Strided, f: F)
where
    F: Fn([f32; MAX_INPUTS]) -> f32 + Sync + Send + Copy,
{
    if out.is_empty() {
        // Nothing to compute; the odometer below would divide by a zero-size dim.
        return;
    }
    let x = ins[0];
    let y = ins.get(1).copied().unwrap_or(x);
    let z = ins.get(2).copied().unwrap_or(x);
    // An op with fewer inputs reads its first input again in the unused slots, with its
    // strides, so a unary op meets the unit-stride loop below.
    let mut own = *walk;
    for k in ins.len()..MAX_INPUTS {
        own.strides[k] = own.strides[0];
    }
    let walk = &own;
    let n = out.len();
    let run = |start: usize, o: &mut [f32]| {
        if walk.is_flat(MAX_INPUTS) {
            flat(x, y, z, start, o, walk, f);
        } else {
            strided(x, y, z, start, o, walk, f);
        }
    };
    if n < 2 * CHUNK {
        run(0, out);
    } else {
        out.par_chunks_mut(CHUNK)
            .enumerate()
            .for_each(|(c, o)| run(c * CHUNK, o));
    }
}

fn flat<F: Fn([f32; MAX_INPUTS]) -> f32>(
    x: &[f32],
    y: &[f32],
    z: &[f32],
    start: usize,
    o: &mut [f32],
    walk: &Strided,
    f: F,
) {
    let s = |k: usize| walk.strides[k][0];
    match (s(0), s(1), s(2)) {
        // The common cases as zipped iterators: no bounds checks, so each op's loop
        // vectorises (an input the op does not read is never loaded).
        (1, 1, 1) => {
            let n = o.len();
            let (x, y, z) = (
                &x[start..start + n],
                &y[start..start + n],
                &z[start..start + n],
            );
            for ((o, &a), (&b, &c)) in o.iter_mut().zip(x).zip(y.iter().zip(z)) {
                *o = f([a, b, c]);
            }
        }
        (1, 0, 1) => {
            let n = o.len();
            let (x, b, z) = (&x[start..start + n], y[0], &z[start..start + n]);
            for ((o, &a), &c) in o.iter_mut().zip(x).zip(z) {
                *o = f([a, b, c]);
            }
        }
        (sx, sy, sz) => {
            for (i, o) in o.iter_mut().enumerate() {
                let j = start + i;
                *o = f([x[j * sx], y[j * sy], z[j * sz]]);
            }
        }
    }
}

fn strided<F: Fn([f32; MAX_INPUTS]) -> f32>(
    x: &[f32],
    y: &[f32],
    z: &[f32],
    start: usize,
    o: &mut [f32],
    walk: &Strided,
    f: F,
) {
    let rank = walk.rank;
    let dims = &walk.dims[..rank];
    // The odometer: coordinates of `start`, then incremented per element.
    let mut coord = [0usize; MAX_RANK];
    let mut rem = start;
    for d in (0..rank).rev() {
        coord[d] = rem % dims[d];
        rem /= dims[d];
    }
    let offset = |k: usize, coord: &[usize; MAX_RANK]| -> usize {
        (0..rank).map(|d| coord[d] * walk.strides[k][d]).sum()
    };
    let (mut ox, mut oy, mut oz) = (offset(0, &coord), offset(1, &coord), offset(2, &coord));
    let last = rank - 1;
    let (sx, sy, sz) = (
        walk.strides[0][last],
        walk.strides[1][last],
        walk.strides[2][last],
    );
    let mut i = 0;
    while i < o.len() {
        // A run along the last dim.
        let run = (dims[last] - coord[last]).min(o.len() - i);
        let o_run = &mut o[i..i + run];
        match (sx, sy, sz) {
            // Every input contiguous along the run (a row broadcast down a matrix, such as a
            // bias): zipped slices, so the op's loop vectorises as in `flat`.
            (1, 1, 1) => {
                let (xr, yr, zr) = (&x[ox..ox + run], &y[oy..oy + run], &z[oz..oz + run]);
                for ((o, &a), (&b, &c)) in o_run.iter_mut().zip(xr).zip(yr.iter().zip(zr)) {
                    *o = f([a, b, c]);
                }
            }
            _ => {
                for (r, o) in o_run.iter_mut().enumerate() {
                    *o = f([x[ox + r * sx], y[oy + r * sy], z[oz + r * sz]]);
                }
            }
        }
        i += run;
        coord[last] += run;
        // Carry into the outer dims.
        let mut d = last;
        while coord[d] == dims[d] && d > 0 {
            coord[d] = 0;
            d -= 1;
            coord[d] += 1;
        }
        ox = offset(0, &coord);
        oy = offset(1, &coord);
        oz = offset(2, &coord);
    }
}

impl CpuBackend {
    pub(super) fn pointwise(
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

    pub(super) fn axpy(
        &self,
        alpha: f32,
        x: &CpuStorage,
        y: &mut CpuStorage,
        n: usize,
    ) -> Result<()> {
        let (x, y) = (&x.f32s("axpy")?[..n], &mut y.f32s_mut("axpy")?[..n]);
        par_elementwise(y, x, |y, x| {
            y.iter_mut().zip(x).for_each(|(y, &x)| *y += alpha * x)
        });
        Ok(())
    }

    pub(super) fn fill(&self, out: &mut CpuStorage, value: f32, n: usize) -> Result<()> {
        out.f32s_mut("fill")?[..n].fill(value);
        Ok(())
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
