//! Dispatch of `shaders/pool.wgsl`: max pooling and its backward (parameters:
//! [`WindowParams`], shared with im2col.wgsl).

use super::im2col::WindowParams;
use crate::error::Result;
use crate::gpu::buffers::GpuBuffer;
use crate::gpu::context::GpuContext;
use crate::gpu::kernels::pool as k;
use crate::ops::{Conv2dGeom, Pool2dGeom};

/// The pooling window as a convolution's (kernel = window), with `total` threads.
fn pool_params(op: &'static str, g: &Pool2dGeom, total: usize) -> Result<WindowParams> {
    let as_conv = Conv2dGeom {
        n: g.n,
        c: g.c,
        h: g.h,
        w: g.w,
        kh: g.ph,
        kw: g.pw,
        stride: g.stride,
        pad: g.pad,
    };
    WindowParams::conv(op, &as_conv, total)
}

impl GpuContext {
    /// Window maxima of `x` into `out` and their u32 argmax into `idx`.
    pub(super) fn max_pool_impl(
        &self,
        x: &GpuBuffer,
        out: &mut GpuBuffer,
        idx: &mut GpuBuffer,
        g: &Pool2dGeom,
    ) -> Result<()> {
        let p = pool_params("max_pool2d", g, g.n * g.c * g.out_h() * g.out_w())?;
        self.window(&k::MAX_POOL, p, &[(1, out), (2, idx), (3, x)])
    }

    /// `dy` routed to `dx` through the argmax `idx`.
    pub(super) fn max_pool_bwd_impl(
        &self,
        dy: &GpuBuffer,
        idx: &GpuBuffer,
        dx: &mut GpuBuffer,
        g: &Pool2dGeom,
    ) -> Result<()> {
        let p = pool_params("max_pool2d_backward", g, g.n * g.c * g.h * g.w)?;
        self.window(&k::MAX_POOL_BWD, p, &[(1, dx), (2, idx), (3, dy)])
    }
}
