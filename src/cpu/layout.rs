//! Layout copies: block copies along one dim (narrow, cat) and batched transposes.

#[allow(unused_imports)]
use super::*;

impl CpuBackend {
    pub(super) fn copy_block(
        &self,
        src: &CpuStorage,
        dst: &mut CpuStorage,
        b: &BlockCopy,
    ) -> Result<()> {
        const OP: &str = "copy_block";
        copy_block_slices(src.f32s(OP)?, dst.f32s_mut(OP)?, b);
        Ok(())
    }

    pub(super) fn transpose(
        &self,
        x: &CpuStorage,
        out: &mut CpuStorage,
        batch: usize,
        rows: usize,
        cols: usize,
    ) -> Result<()> {
        const OP: &str = "transpose";
        let n = batch * rows * cols;
        let (x, o) = (&x.f32s(OP)?[..n], &mut out.f32s_mut(OP)?[..n]);
        let shape_err = |e: ndarray::ShapeError| Error::invalid(OP, e.to_string());
        let xv = ArrayView3::from_shape((batch, rows, cols), x).map_err(shape_err)?;
        let mut ov = ArrayViewMut3::from_shape((batch, cols, rows), o).map_err(shape_err)?;
        ov.assign(&xv.permuted_axes([0, 2, 1]));
        Ok(())
    }
}

fn copy_block_slices<T: Copy>(src: &[T], dst: &mut [T], b: &BlockCopy) {
    for o in 0..b.outer {
        let s = (o * b.src_dim + b.src_off) * b.inner;
        let d = (o * b.dst_dim + b.dst_off) * b.inner;
        let n = b.len * b.inner;
        dst[d..d + n].copy_from_slice(&src[s..s + n]);
    }
}
