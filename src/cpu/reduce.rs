//! Row and column sums, row argmax and the accuracy count.

#[allow(unused_imports)]
use super::*;

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
        o.fill(0.0);
        for row in x[..rows * cols].chunks_exact(cols) {
            o.iter_mut().zip(row).for_each(|(o, &v)| *o += v);
        }
        o.iter_mut().for_each(|o| *o *= alpha);
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
