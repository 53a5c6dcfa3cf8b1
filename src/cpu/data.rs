//! Data ops: byte gathers from a packed dataset, row gathers, one-hot, dropout masks,
//! on-the-fly augmentation (affine and elastic) and bilinear resizing.

#[allow(unused_imports)]
use super::*;

impl CpuBackend {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn gather_bytes(
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

    pub(super) fn gather_rows(
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

    pub(super) fn one_hot(
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

    pub(super) fn dropout_mask(
        &self,
        out: &mut CpuStorage,
        n: usize,
        spec: &DropoutSpec,
    ) -> Result<()> {
        let out = out.f32s_mut("dropout_mask")?;
        for (i, o) in out[..n].iter_mut().enumerate() {
            let u = counter_uniform(spec.seed, spec.offset.wrapping_add(i as u32));
            *o = if u >= spec.ratio { spec.scale } else { 0.0 };
        }
        Ok(())
    }

    pub(super) fn fill_random(
        &self,
        out: &mut CpuStorage,
        n: usize,
        spec: &RandomSpec,
    ) -> Result<()> {
        use crate::rng::{counter_normal, counter_uniform};
        let out = &mut out.f32s_mut("fill_random")?[..n];
        // Chunks of 4096 across the pool; element i's value depends on i alone.
        const CHUNK: usize = 4096;
        let (seed, offset) = (spec.seed, spec.offset);
        let fill = |(c, o): (usize, &mut [f32])| {
            let first = (c * CHUNK) as u32;
            for (j, v) in o.iter_mut().enumerate() {
                let i = first.wrapping_add(j as u32);
                *v = match spec.dist {
                    Distribution::Uniform { low, high } => {
                        low + (high - low) * counter_uniform(seed, offset.wrapping_add(i))
                    }
                    Distribution::Normal { mean, std } => {
                        let k = offset.wrapping_add(i.wrapping_mul(2));
                        mean + std * counter_normal(seed, k)
                    }
                };
            }
        };
        // A GAN's or a policy's small batch of noise stays off the pool.
        if n <= CHUNK {
            fill((0, out));
        } else {
            out.par_chunks_mut(CHUNK).enumerate().for_each(fill);
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn sample_categorical(
        &self,
        x: &CpuStorage,
        out: &mut CpuStorage,
        rows: usize,
        cols: usize,
        seed: u32,
        offset: u32,
    ) -> Result<()> {
        const OP: &str = "sample_categorical";
        let (x, o) = (x.f32s(OP)?, out.u32s_mut(OP)?);
        // shaders/elementwise.wgsl's `categorical`, the same f32 sums in the same order.
        let draw = |(r, pick): (usize, &mut u32)| {
            let row = &x[r * cols..(r + 1) * cols];
            let m = row[1..].iter().fold(row[0], |m, &v| m.max(v));
            let total: f32 = row.iter().fold(0.0, |s, &v| s + (v - m).exp());
            let t = crate::rng::counter_uniform(seed, offset.wrapping_add(r as u32)) * total;
            let mut acc = 0.0f32;
            *pick = (cols - 1) as u32;
            for (k, &v) in row.iter().enumerate() {
                acc += (v - m).exp();
                if acc > t {
                    *pick = k as u32;
                    break;
                }
            }
        };
        // A policy's one observation at a time stays off the pool.
        if rows * cols <= 4096 {
            o[..rows].iter_mut().enumerate().for_each(draw);
        } else {
            o[..rows].par_iter_mut().enumerate().for_each(draw);
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn augment(
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
                            // A huge shift saturates the casts; the +1 then wraps (as WGSL's
                            // i32 does) to a tap outside the image, which reads 0 either way.
                            let (xi, yi) = (x0 as i64, y0 as i64);
                            let (xj, yj) = (xi.wrapping_add(1), yi.wrapping_add(1));
                            let top = px(yi, xi) * (1.0 - wx) + px(yi, xj) * wx;
                            let bottom = px(yj, xi) * (1.0 - wx) + px(yj, xj) * wx;
                            let val = top * (1.0 - wy) + bottom * wy;
                            o[y * w + xo] = ((val - 0.5) * con + 0.5 + b).clamp(0.0, 1.0);
                        }
                    }
                }
            });
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn resize_bilinear(
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

/// Byte `i` of a byte array packed little-endian four to a u32 (as `shaders/data.wgsl`).
fn byte_at(words: &[u32], i: usize) -> u32 {
    (words[i >> 2] >> ((i & 3) * 8)) & 0xff
}
