//! Dispatch of `shaders/index.wgsl`: index_select, gather and their adjoints, and the
//! extrema of each row with their index (max/min/argmax along a dim).

use super::u32_of;
use crate::error::Result;
use crate::gpu::buffers::GpuBuffer;
use crate::gpu::context::GpuContext;
use crate::gpu::kernels::{KernelDef, index as k, uniform};
use crate::gpu::pipelines::KernelKey;
use crate::ops::IndexGeom;
use std::sync::Arc;

uniform! {
    /// `Params` of `shaders/index.wgsl`.
    pub(crate) struct IndexParams {
        pub outer: u32,
        pub size: u32,
        pub inner: u32,
        pub count: u32,
    }
}

impl GpuContext {
    /// The geometry `g` as parameters, checked against 32-bit indexing.
    fn index_params(op: &'static str, g: &IndexGeom) -> Result<IndexParams> {
        u32_of(op, g.outer * g.size.max(g.count) * g.inner)?;
        Ok(IndexParams {
            outer: u32_of(op, g.outer)?,
            size: u32_of(op, g.size)?,
            inner: u32_of(op, g.inner)?,
            count: u32_of(op, g.count)?,
        })
    }

    /// One of index.wgsl's gather-like entries: one thread per element of `out`, which has
    /// `outputs` elements; `x` is read, `idx` indexes.
    fn index_impl(
        self: &Arc<Self>,
        kernel: &'static KernelDef,
        x: &GpuBuffer,
        idx: &GpuBuffer,
        out: &mut GpuBuffer,
        g: &IndexGeom,
        outputs: usize,
    ) -> Result<()> {
        let p = Self::index_params(kernel.entry, g)?;
        let groups = self.grid(outputs, 256)?;
        self.dispatch(
            &KernelKey::new(kernel),
            bytemuck::bytes_of(&p),
            &[(1, out), (2, x), (3, idx)],
            groups,
        )
    }

    /// `out = x[.., idx, ..]` along the geometry's dim.
    pub(super) fn index_select_impl(
        self: &Arc<Self>,
        x: &GpuBuffer,
        idx: &GpuBuffer,
        out: &mut GpuBuffer,
        g: &IndexGeom,
    ) -> Result<()> {
        let outputs = g.outer * g.count * g.inner;
        self.index_impl(&k::INDEX_SELECT, x, idx, out, g, outputs)
    }

    /// The adjoint of [`GpuContext::index_select_impl`]: `dx` summed from `dy`.
    pub(super) fn index_select_bwd_impl(
        self: &Arc<Self>,
        dy: &GpuBuffer,
        idx: &GpuBuffer,
        dx: &mut GpuBuffer,
        g: &IndexGeom,
    ) -> Result<()> {
        let outputs = g.outer * g.size * g.inner;
        self.index_impl(&k::INDEX_SELECT_BWD, dy, idx, dx, g, outputs)
    }

    /// `out = x.gather(dim, idx)`.
    pub(super) fn gather_impl(
        self: &Arc<Self>,
        x: &GpuBuffer,
        idx: &GpuBuffer,
        out: &mut GpuBuffer,
        g: &IndexGeom,
    ) -> Result<()> {
        let outputs = g.outer * g.count * g.inner;
        self.index_impl(&k::GATHER, x, idx, out, g, outputs)
    }

    /// The adjoint of [`GpuContext::gather_impl`].
    pub(super) fn gather_bwd_impl(
        self: &Arc<Self>,
        dy: &GpuBuffer,
        idx: &GpuBuffer,
        dx: &mut GpuBuffer,
        g: &IndexGeom,
    ) -> Result<()> {
        let outputs = g.outer * g.size * g.inner;
        self.index_impl(&k::GATHER_BWD, dy, idx, dx, g, outputs)
    }

    /// The max (or min) of each row of `x [rows, cols]` and its u32 index.
    pub(super) fn extreme_rows_impl(
        self: &Arc<Self>,
        x: &GpuBuffer,
        values: &mut GpuBuffer,
        indices: &mut GpuBuffer,
        rows: usize,
        cols: usize,
        min: bool,
    ) -> Result<()> {
        const OP: &str = "extreme_rows";
        let p = Self::index_params(
            OP,
            &IndexGeom {
                outer: rows,
                size: cols,
                inner: 1,
                count: 1,
            },
        )?;
        let groups = self.grid(rows, 1)?;
        self.dispatch(
            &KernelKey::new(&k::EXTREME_ROWS).constant("MIN", min as u32),
            bytemuck::bytes_of(&p),
            &[(1, values), (2, x), (4, indices)],
            groups,
        )
    }
}
