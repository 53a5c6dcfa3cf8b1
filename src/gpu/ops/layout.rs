//! Dispatch of `shaders/layout.wgsl`: batched transpose, strided block copies
//! (concatenation, slicing, stacking) and bilinear resize.

use super::u32_of;
use crate::error::Result;
use crate::gpu::buffers::GpuBuffer;
use crate::gpu::context::GpuContext;
use crate::gpu::kernels::{layout as k, uniform};
use crate::gpu::pipelines::KernelKey;
use crate::ops::BlockCopy;
use bytemuck::Zeroable;

uniform! {
    /// `Params` of `shaders/layout.wgsl`.
    pub(crate) struct TransposeParams {
        batch: u32,
        rows: u32,
        cols: u32,
        _p0: u32,
        src_dim: u32,
        dst_dim: u32,
        src_off: u32,
        dst_off: u32,
    }
}

impl GpuContext {
    /// `out [batch, cols, rows] = x [batch, rows, cols]ᵀ`.
    pub(super) fn transpose_impl(
        &self,
        x: &GpuBuffer,
        out: &mut GpuBuffer,
        batch: usize,
        rows: usize,
        cols: usize,
    ) -> Result<()> {
        const OP: &str = "transpose";
        let p = TransposeParams {
            batch: u32_of(OP, batch)?,
            rows: u32_of(OP, rows)?,
            cols: u32_of(OP, cols)?,
            ..Zeroable::zeroed()
        };
        let groups = self.grid(batch * rows * cols, 256)?;
        self.dispatch(
            &KernelKey::new(&k::TRANSPOSE),
            bytemuck::bytes_of(&p),
            &[(1, out), (2, x)],
            groups,
        )
    }

    /// Copies the block `b` of `src` into `dst`.
    pub(super) fn copy_block_impl(
        &self,
        src: &GpuBuffer,
        dst: &mut GpuBuffer,
        b: &BlockCopy,
    ) -> Result<()> {
        const OP: &str = "copy_block";
        let p = TransposeParams {
            batch: u32_of(OP, b.outer)?,
            rows: u32_of(OP, b.len)?,
            cols: u32_of(OP, b.inner)?,
            _p0: 0,
            src_dim: u32_of(OP, b.src_dim)?,
            dst_dim: u32_of(OP, b.dst_dim)?,
            src_off: u32_of(OP, b.src_off)?,
            dst_off: u32_of(OP, b.dst_off)?,
        };
        u32_of(OP, b.outer * b.dst_dim * b.inner)?;
        let groups = self.grid(b.numel(), 256)?;
        self.dispatch(
            &KernelKey::new(&k::COPY_BLOCK),
            bytemuck::bytes_of(&p),
            &[(1, dst), (2, src)],
            groups,
        )
    }

    /// Bilinear resize of `planes` `h × w` planes to `oh × ow`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn resize_bilinear_impl(
        &self,
        x: &GpuBuffer,
        out: &mut GpuBuffer,
        planes: usize,
        h: usize,
        w: usize,
        oh: usize,
        ow: usize,
    ) -> Result<()> {
        const OP: &str = "resize_bilinear";
        let p = TransposeParams {
            batch: u32_of(OP, planes)?,
            rows: u32_of(OP, h)?,
            cols: u32_of(OP, w)?,
            _p0: 0,
            src_dim: u32_of(OP, oh)?,
            dst_dim: u32_of(OP, ow)?,
            src_off: 0,
            dst_off: 0,
        };
        let groups = self.grid(planes * oh * ow, 256)?;
        self.dispatch(
            &KernelKey::new(&k::RESIZE_BILINEAR),
            bytemuck::bytes_of(&p),
            &[(1, &*out), (2, x)],
            groups,
        )
    }
}
