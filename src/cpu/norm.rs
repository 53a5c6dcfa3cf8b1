//! Batch normalisation: statistics, the normalising apply, and the two backward passes.

#[allow(unused_imports)]
use super::*;

impl CpuBackend {
    pub(super) fn bn_stats(
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

    pub(super) fn bn_apply(
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

    pub(super) fn bn_bwd_reduce(
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

    #[allow(clippy::too_many_arguments)]
    pub(super) fn bn_bwd_dx(
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
}
