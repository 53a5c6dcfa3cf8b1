//! Row and column sums, row argmax and the accuracy count.

#[allow(unused_imports)]
use super::*;

/// Elements below which [`CpuBackend::sum_rows`] runs on the calling thread.
const SUM_PARALLEL_MIN: usize = 1 << 16;

impl CpuBackend {
    pub(super) fn sum_rows(
        &self,
        x: &CpuStorage,
        out: &mut CpuStorage,
        rows: usize,
        cols: usize,
        alpha: f32,
    ) -> Result<()> {
        let (x, o) = (x.f32s("sum_rows")?, &mut out.f32s_mut("sum_rows")?[..cols]);
        let x = &x[..rows * cols];
        // Column block `o` starting at column `c0`, rows in order: the same sums on any split.
        let block = |c0: usize, o: &mut [f32]| {
            o.fill(0.0);
            for row in x.chunks_exact(cols) {
                let row = &row[c0..c0 + o.len()];
                o.iter_mut().zip(row).for_each(|(o, &v)| *o += v);
            }
            o.iter_mut().for_each(|o| *o *= alpha);
        };
        // A bias gradient sums a few megabytes: split by columns across the pool when large.
        let threads = rayon::current_num_threads();
        if threads <= 1 || rows * cols < SUM_PARALLEL_MIN || cols < 2 * 16 {
            block(0, o);
        } else {
            let width = cols.div_ceil(threads).next_multiple_of(16);
            o.par_chunks_mut(width)
                .enumerate()
                .for_each(|(i, o)| block(i * width, o));
        }
        Ok(())
    }

    pub(super) fn sum_cols(
        &self,
        x: &CpuStorage,
        out: &mut CpuStorage,
        rows: usize,
        cols: usize,
        alpha: f32,
    ) -> Result<()> {
        let (x, o) = (x.f32s("sum_cols")?, out.f32s_mut("sum_cols")?);
        for (o, row) in o[..rows]
            .iter_mut()
            .zip(x[..rows * cols].chunks_exact(cols))
        {
            *o = alpha * gemm::sum_f64(row) as f32;
        }
        Ok(())
    }

    pub(super) fn argmax_rows(
        &self,
        x: &CpuStorage,
        out: &mut CpuStorage,
        rows: usize,
        cols: usize,
    ) -> Result<()> {
        let (x, out) = (x.f32s("argmax_rows")?, out.u32s_mut("argmax_rows")?);
        for (o, row) in out[..rows].iter_mut().zip(x.chunks_exact(cols)) {
            *o = argmax(row) as u32;
        }
        Ok(())
    }

    pub(super) fn count_correct(
        &self,
        x: &CpuStorage,
        labels: &CpuStorage,
        out: &mut CpuStorage,
        rows: usize,
        cols: usize,
        accumulate: bool,
    ) -> Result<()> {
        let (x, labels, out) = (
            x.f32s("count_correct")?,
            labels.u32s("count_correct")?,
            out.u32s_mut("count_correct")?,
        );
        let base = if accumulate { out[0] } else { 0 };
        out[0] = base
            + x[..rows * cols]
                .chunks_exact(cols)
                .zip(labels)
                .filter(|(row, t)| argmax(row) == **t as usize)
                .count() as u32;
        Ok(())
    }
}

pub(super) fn label_at(labels: &[u32], row: usize, cols: usize, op: &'static str) -> Result<usize> {
    let t = labels[row] as usize;
    if t >= cols {
        return Err(Error::invalid(
            op,
            format!("label {t} at row {row} is out of range for {cols} classes"),
        ));
    }
    Ok(t)
}

/// Index of the first maximum.
fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best
}
