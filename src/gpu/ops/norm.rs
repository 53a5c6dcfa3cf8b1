//! Dispatch of `shaders/norm.wgsl`: batch normalization (statistics, apply, and the two
//! backward passes), per-channel statistics in f32.

use super::u32_of;
use crate::error::{Error, Result};
use crate::gpu::buffers::GpuBuffer;
use crate::gpu::context::GpuContext;
use crate::gpu::kernels::{norm as k, uniform};
use crate::gpu::pipelines::KernelKey;
use crate::ops::BnGeom;

uniform! {
    /// `Params` of `shaders/norm.wgsl`.
    pub(crate) struct BnParams {
        n: u32,
        c: u32,
        s: u32,
        eps: f32,
    }
}

/// Per-channel values each thread of a norm.wgsl reduction visits: m / 256 must stay under
/// lavapipe's 65,535-iteration cutoff (a real GPU has none, but one limit everywhere keeps
/// the kernels' results the same on every adapter).
const BN_MAX_PER_CHANNEL: usize = 256 * 65_000;

fn bn_params(g: &BnGeom) -> Result<BnParams> {
    const OP: &str = "batch_norm";
    if g.n * g.s > BN_MAX_PER_CHANNEL {
        return Err(Error::invalid(
            OP,
            format!(
                "{} values per channel exceed the kernel's {BN_MAX_PER_CHANNEL}",
                g.n * g.s
            ),
        ));
    }
    Ok(BnParams {
        n: u32_of(OP, g.n)?,
        c: u32_of(OP, g.c)?,
        s: u32_of(OP, g.s)?,
        eps: g.eps,
    })
}

impl GpuContext {
    /// Per-channel mean and inverse std into `saved`, variance into `var`.
    pub(super) fn bn_stats_impl(
        &self,
        x: &GpuBuffer,
        saved: &mut GpuBuffer,
        var: &mut GpuBuffer,
        g: &BnGeom,
    ) -> Result<()> {
        let p = bn_params(g)?;
        let groups = self.grid(g.c, 1)?;
        self.dispatch(
            &KernelKey::new(&k::BN_STATS),
            bytemuck::bytes_of(&p),
            &[(2, x), (6, &*saved), (8, &*var)],
            groups,
        )
    }

    /// `y = gamma · (x - mean) · inv_std + beta`.
    pub(super) fn bn_apply_impl(
        &self,
        x: &GpuBuffer,
        saved: &GpuBuffer,
        gamma: &GpuBuffer,
        beta: &GpuBuffer,
        y: &mut GpuBuffer,
        g: &BnGeom,
    ) -> Result<()> {
        let p = bn_params(g)?;
        let groups = self.grid(g.n * g.c * g.s, 256)?;
        self.dispatch(
            &KernelKey::new(&k::BN_APPLY),
            bytemuck::bytes_of(&p),
            &[(1, &*y), (2, x), (4, gamma), (5, beta), (7, saved)],
            groups,
        )
    }

    /// dgamma and dbeta (f32) from x, dy and the saved statistics.
    pub(super) fn bn_bwd_reduce_impl(
        &self,
        x: &GpuBuffer,
        dy: &GpuBuffer,
        saved: &GpuBuffer,
        dgamma: &mut GpuBuffer,
        dbeta: &mut GpuBuffer,
        g: &BnGeom,
    ) -> Result<()> {
        let p = bn_params(g)?;
        let groups = self.grid(g.c, 1)?;
        self.dispatch(
            &KernelKey::new(&k::BN_BWD_REDUCE),
            bytemuck::bytes_of(&p),
            &[(2, x), (3, dy), (6, &*dgamma), (7, saved), (8, &*dbeta)],
            groups,
        )
    }

    /// dx from dy, the statistics and the reductions of [`GpuContext::bn_bwd_reduce_impl`].
    #[allow(clippy::too_many_arguments)]
    pub(super) fn bn_bwd_dx_impl(
        &self,
        x: &GpuBuffer,
        dy: &GpuBuffer,
        saved: &GpuBuffer,
        gamma: &GpuBuffer,
        dgamma: &GpuBuffer,
        dbeta: &GpuBuffer,
        dx: &mut GpuBuffer,
        g: &BnGeom,
    ) -> Result<()> {
        let p = bn_params(g)?;
        let groups = self.grid(g.n * g.c * g.s, 256)?;
        self.dispatch(
            &KernelKey::new(&k::BN_BWD_DX),
            bytemuck::bytes_of(&p),
            &[
                (1, &*dx),
                (2, x),
                (3, dy),
                (4, gamma),
                (6, dgamma),
                (7, saved),
                (8, dbeta),
            ],
            groups,
        )
    }
}
