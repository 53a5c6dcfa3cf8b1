//! Dispatch of `shaders/reduce.wgsl` (and its subgroup twin `reduce_subgroup.wgsl`): column
//! sums of rows (`sum_rows`, bias gradients), row sums (`sum_cols`), argmax and accuracy
//! counts. Long sums run in blocks into f32 partials that are summed again.

use super::u32_of;
use crate::dtype::DType;
use crate::error::Result;
use crate::gpu::buffers::GpuBuffer;
use crate::gpu::context::GpuContext;
use crate::gpu::kernels::{KernelDef, reduce as k, reduce_subgroup as sg, uniform};
use crate::gpu::pipelines::KernelKey;
use std::sync::Arc;

uniform! {
    /// `Params` of `shaders/reduce.wgsl` and `shaders/softmax.wgsl`.
    pub(crate) struct RowParams {
        pub rows: u32,
        pub cols: u32,
        pub alpha: f32,
        /// count_correct: add to the count instead of overwriting it.
        pub accumulate: u32,
        /// The blocked sums: rows (or columns) per block, beta, and the number of outputs.
        pub block: u32,
        pub beta: f32,
        pub outputs: u32,
        pub _p0: u32,
    }
}

impl RowParams {
    /// `rows × cols` with the scalar `alpha` and the `accumulate` flag.
    pub(super) fn new(
        op: &'static str,
        rows: usize,
        cols: usize,
        alpha: f32,
        accumulate: u32,
    ) -> Result<RowParams> {
        Ok(RowParams {
            rows: u32_of(op, rows)?,
            cols: u32_of(op, cols)?,
            alpha,
            accumulate,
            block: 0,
            beta: 0.0,
            outputs: 0,
            _p0: 0,
        })
    }

    /// A blocked column sum: `rows` in blocks of `block`, `alpha * sum + beta * out`.
    fn sums(rows: usize, cols: usize, block: usize, alpha: f32, beta: f32) -> Result<RowParams> {
        const OP: &str = "sum_rows";
        let outputs = rows.div_ceil(block.max(1)).max(1) * cols;
        Ok(RowParams {
            block: u32_of(OP, block.max(1))?,
            beta,
            outputs: u32_of(OP, outputs)?,
            ..RowParams::new(OP, rows, cols, alpha, 0)?
        })
    }
}

/// Rows one thread of a column sum adds up. Longer columns are summed in blocks into f32
/// partials and those summed again, so no thread loops long: lavapipe cuts every invocation
/// off after 65,535 loop iterations, and on a real GPU one thread per column would idle it.
const SUM_BLOCK: usize = 1024;

impl GpuContext {
    /// A workgroup reduction of reduce.wgsl: `subgroup`, its twin in reduce_subgroup.wgsl,
    /// where the context uses subgroups ([`GpuContext::uses_subgroups`]), `plain` otherwise.
    fn reduction(
        &self,
        plain: &'static KernelDef,
        subgroup: &'static KernelDef,
    ) -> &'static KernelDef {
        if self.uses_subgroups() {
            subgroup
        } else {
            plain
        }
    }

    /// One dispatch of a [`RowParams`] kernel (reduce.wgsl, softmax.wgsl).
    pub(super) fn rows(
        &self,
        kernel: &'static KernelDef,
        p: RowParams,
        bindings: &[(u32, &GpuBuffer)],
        groups: [u32; 3],
    ) -> Result<()> {
        self.dispatch(
            &KernelKey::new(kernel),
            bytemuck::bytes_of(&p),
            bindings,
            groups,
        )
    }

    /// `out [cols] = alpha * Σ_rows x [rows, cols] + beta * out`, in blocks of [`SUM_BLOCK`]
    /// rows (f32 partials between the stages).
    pub(super) fn column_sums(
        self: &Arc<Self>,
        x: &GpuBuffer,
        out: &mut GpuBuffer,
        rows: usize,
        cols: usize,
        alpha: f32,
        beta: f32,
    ) -> Result<()> {
        if cols == 0 {
            return Ok(());
        }
        if rows <= SUM_BLOCK {
            let p = RowParams::sums(rows, cols, rows, alpha, beta)?;
            let groups = self.grid(cols, 256)?;
            return self.rows(&k::SUM_ROWS, p, &[(1, out), (2, x)], groups);
        }
        let p = RowParams::sums(rows, cols, SUM_BLOCK, 1.0, 0.0)?;
        let part = self.alloc_buffer(p.outputs as usize, DType::F32, "sum_rows partials")?;
        let groups = self.grid(p.outputs as usize, 256)?;
        self.rows(&k::SUM_ROWS_PART, p, &[(5, &part), (2, x)], groups)?;
        self.sum_partials(part, rows.div_ceil(SUM_BLOCK), cols, out, alpha, beta)
    }

    /// `out [cols] = alpha * Σ_rows part [rows, cols] + beta * out` over f32 partials.
    pub(super) fn sum_partials(
        self: &Arc<Self>,
        mut part: GpuBuffer,
        mut rows: usize,
        cols: usize,
        out: &mut GpuBuffer,
        alpha: f32,
        beta: f32,
    ) -> Result<()> {
        while rows > SUM_BLOCK {
            let p = RowParams::sums(rows, cols, SUM_BLOCK, 1.0, 0.0)?;
            let next = self.alloc_buffer(p.outputs as usize, DType::F32, "sum_rows partials")?;
            let groups = self.grid(p.outputs as usize, 256)?;
            self.rows(&k::SUM_ROWS_PART_F32, p, &[(5, &next), (6, &part)], groups)?;
            part = next;
            rows = rows.div_ceil(SUM_BLOCK);
        }
        let p = RowParams::sums(rows, cols, rows, alpha, beta)?;
        let groups = self.grid(cols, 256)?;
        self.rows(&k::SUM_ROWS_FINAL, p, &[(1, out), (6, &part)], groups)
    }

    /// `out [rows] = alpha * Σ_cols x [rows, cols]`: a whole row per workgroup while each
    /// thread adds at most [`SUM_BLOCK`] of it; longer rows in blocks into f32 partials.
    pub(super) fn sum_cols_impl(
        self: &Arc<Self>,
        x: &GpuBuffer,
        out: &mut GpuBuffer,
        rows: usize,
        cols: usize,
        alpha: f32,
    ) -> Result<()> {
        const OP: &str = "sum_cols";
        const ROW_BLOCK: usize = 256 * SUM_BLOCK;
        let blocked = |cols: usize, block: usize, alpha: f32| -> Result<RowParams> {
            Ok(RowParams {
                block: u32_of(OP, block.max(1))?,
                outputs: u32_of(OP, rows * cols.div_ceil(block.max(1)).max(1))?,
                ..RowParams::new(OP, rows, cols, alpha, 0)?
            })
        };
        if cols <= ROW_BLOCK {
            let p = blocked(cols, cols, alpha)?;
            let groups = self.grid(rows, 1)?;
            let kernel = self.reduction(&k::SUM_COLS, &sg::SUM_COLS_SG);
            return self.rows(kernel, p, &[(1, out), (2, x)], groups);
        }
        let p = blocked(cols, ROW_BLOCK, 1.0)?;
        let part = self.alloc_buffer(p.outputs as usize, DType::F32, "sum_cols partials")?;
        let groups = self.grid(p.outputs as usize, 1)?;
        let kernel = self.reduction(&k::SUM_COLS_PART, &sg::SUM_COLS_PART_SG);
        self.rows(kernel, p, &[(5, &part), (2, x)], groups)?;
        let blocks = cols.div_ceil(ROW_BLOCK);
        let p = blocked(blocks, blocks, alpha)?;
        let groups = self.grid(rows, 1)?;
        let kernel = self.reduction(&k::SUM_COLS_F32, &sg::SUM_COLS_F32_SG);
        self.rows(kernel, p, &[(1, out), (6, &part)], groups)
    }

    /// The u32 index of each row's maximum.
    pub(super) fn argmax_rows_impl(
        &self,
        x: &GpuBuffer,
        out: &mut GpuBuffer,
        rows: usize,
        cols: usize,
    ) -> Result<()> {
        let p = RowParams::new("argmax_rows", rows, cols, 1.0, 0)?;
        let groups = self.grid(rows, 256)?;
        self.rows(&k::ARGMAX_ROWS, p, &[(2, x), (3, out)], groups)
    }

    /// Rows of `x` whose argmax equals the label, into (or added to) `out[0]`.
    pub(super) fn count_correct_impl(
        &self,
        x: &GpuBuffer,
        labels: &GpuBuffer,
        out: &mut GpuBuffer,
        rows: usize,
        cols: usize,
        accumulate: bool,
    ) -> Result<()> {
        let p = RowParams::new("count_correct", rows, cols, 1.0, accumulate as u32)?;
        let kernel = self.reduction(&k::COUNT_CORRECT, &sg::COUNT_CORRECT_SG);
        self.rows(kernel, p, &[(2, x), (3, out), (4, labels)], [1, 1, 1])
    }
}
