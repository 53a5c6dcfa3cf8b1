//! Dispatch of `shaders/softmax.wgsl`: row softmax, its backward, and the fused softmax +
//! cross-entropy with its backward (parameters: [`RowParams`], shared with reduce.wgsl).

use super::reduce::RowParams;
use crate::error::Result;
use crate::gpu::buffers::GpuBuffer;
use crate::gpu::context::GpuContext;
use crate::gpu::kernels::softmax as k;
use crate::gpu::pipelines::KernelKey;

impl GpuContext {
    /// Softmax of each row of `x [rows, cols]`.
    pub(super) fn softmax_impl(
        &self,
        x: &GpuBuffer,
        out: &mut GpuBuffer,
        rows: usize,
        cols: usize,
    ) -> Result<()> {
        let p = RowParams::new("softmax", rows, cols, 1.0, 0)?;
        let groups = self.grid(rows, 1)?;
        self.rows(&k::SOFTMAX, p, &[(1, out), (2, x)], groups)
    }

    /// `dx = y · (dy - Σ y·dy)` per row.
    pub(super) fn softmax_bwd_impl(
        &self,
        y: &GpuBuffer,
        dy: &GpuBuffer,
        dx: &mut GpuBuffer,
        rows: usize,
        cols: usize,
    ) -> Result<()> {
        let p = RowParams::new("softmax_backward", rows, cols, 1.0, 0)?;
        let groups = self.grid(rows, 1)?;
        self.rows(&k::SOFTMAX_BWD, p, &[(1, dx), (2, y), (3, dy)], groups)
    }

    /// Probabilities and per-row cross-entropy losses against u32 labels.
    pub(super) fn softmax_ce_impl(
        &self,
        logits: &GpuBuffer,
        labels: &GpuBuffer,
        probs: &mut GpuBuffer,
        row_loss: &mut GpuBuffer,
        rows: usize,
        cols: usize,
    ) -> Result<()> {
        let p = RowParams::new("softmax_cross_entropy", rows, cols, 1.0, 0)?;
        let groups = self.grid(rows, 1)?;
        self.rows(
            &k::SOFTMAX_CE,
            p,
            &[(1, probs), (2, logits), (4, labels), (5, row_loss)],
            groups,
        )
    }

    /// `dx = scale · (probs - onehot(labels))`, times `dout` per row when given.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn softmax_ce_bwd_impl(
        &self,
        probs: &GpuBuffer,
        labels: &GpuBuffer,
        dout: Option<&GpuBuffer>,
        dx: &mut GpuBuffer,
        rows: usize,
        cols: usize,
        scale: f32,
    ) -> Result<()> {
        const OP: &str = "softmax_cross_entropy_backward";
        let p = RowParams::new(OP, rows, cols, scale, 0)?;
        let groups = self.grid(rows * cols, 256)?;
        // Without an upstream gradient, binding 3 (unread) gets the probabilities.
        self.dispatch(
            &KernelKey::new(&k::SOFTMAX_CE_BWD).constant("DOUT", dout.is_some() as u32),
            bytemuck::bytes_of(&p),
            &[(1, dx), (2, probs), (3, dout.unwrap_or(probs)), (4, labels)],
            groups,
        )
    }
}
