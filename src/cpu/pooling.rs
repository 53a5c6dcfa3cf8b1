//! Max pooling with indices (a 2×2 stride-2 fast path) and its backward.

#[allow(unused_imports)]
use super::*;

impl CpuBackend {
    pub(super) fn max_pool(
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

    pub(super) fn max_pool_bwd(
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
