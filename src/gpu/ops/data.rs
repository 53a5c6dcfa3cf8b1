//! Dispatch of `shaders/data.wgsl`: batches gathered on the device from a dataset's packed
//! bytes (by a permutation), embedding lookups and one-hot rows.

use super::u32_of;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::gpu::buffers::GpuBuffer;
use crate::gpu::context::GpuContext;
use crate::gpu::kernels::{data as k, uniform};
use crate::gpu::pipelines::KernelKey;

uniform! {
    /// `Params` of `shaders/data.wgsl`.
    pub(crate) struct GatherParams {
        count: u32,
        row_len: u32,
        offset: u32,
        scale: f32,
    }
}

impl GpuContext {
    /// Rows `perm[offset..offset + count]` of the packed-byte `src`, as scaled floats (or u32
    /// for a u32 `out`).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn gather_bytes_impl(
        &self,
        src: &GpuBuffer,
        perm: &GpuBuffer,
        offset: usize,
        count: usize,
        row_len: usize,
        scale: f32,
        out: &mut GpuBuffer,
    ) -> Result<()> {
        const OP: &str = "gather_bytes";
        if offset + count > perm.numel {
            return Err(Error::invalid(
                OP,
                format!(
                    "rows {offset}..{} of a permutation of {}",
                    offset + count,
                    perm.numel
                ),
            ));
        }
        let p = GatherParams {
            count: u32_of(OP, count)?,
            row_len: u32_of(OP, row_len)?,
            offset: u32_of(OP, offset)?,
            scale,
        };
        let groups = self.grid(count * row_len, 256)?;
        let (kernel, slot) = match out.dtype {
            DType::U32 => (&k::GATHER_U32, 4),
            _ => (&k::GATHER_F32, 1),
        };
        self.dispatch(
            &KernelKey::new(kernel),
            bytemuck::bytes_of(&p),
            &[(slot, &*out), (2, src), (3, perm)],
            groups,
        )
    }

    /// Embedding lookup: `out[i] = table[idx[i]]`, rows of `row_len`.
    pub(super) fn gather_rows_impl(
        &self,
        table: &GpuBuffer,
        idx: &GpuBuffer,
        out: &mut GpuBuffer,
        count: usize,
        row_len: usize,
    ) -> Result<()> {
        const OP: &str = "embedding";
        let p = GatherParams {
            count: u32_of(OP, count)?,
            row_len: u32_of(OP, row_len)?,
            offset: 0,
            // The table's row count, bit-cast (the kernel bounds-checks indices with it).
            scale: f32::from_bits(u32_of(OP, table.numel / row_len.max(1))?),
        };
        let groups = self.grid(count * row_len, 256)?;
        self.dispatch(
            &KernelKey::new(&k::GATHER_ROWS),
            bytemuck::bytes_of(&p),
            &[(1, &*out), (3, idx), (5, table)],
            groups,
        )
    }

    /// One-hot rows of `classes` for each u32 index.
    pub(super) fn one_hot_impl(
        &self,
        idx: &GpuBuffer,
        out: &mut GpuBuffer,
        count: usize,
        classes: usize,
    ) -> Result<()> {
        const OP: &str = "one_hot";
        let p = GatherParams {
            count: u32_of(OP, count)?,
            row_len: u32_of(OP, classes)?,
            offset: 0,
            scale: 0.0,
        };
        let groups = self.grid(count * classes, 256)?;
        self.dispatch(
            &KernelKey::new(&k::ONE_HOT),
            bytemuck::bytes_of(&p),
            &[(1, &*out), (3, idx)],
            groups,
        )
    }
}
