//! Softmax over rows and the fused softmax-cross-entropy, forward and backward.

#[allow(unused_imports)]
use super::reduce::label_at;
use super::*;

impl CpuBackend {
    pub(super) fn softmax(
        &self,
        x: &CpuStorage,
        out: &mut CpuStorage,
        rows: usize,
        cols: usize,
    ) -> Result<()> {
        let (x, o) = (x.f32s("softmax")?, out.f32s_mut("softmax")?);
        for (orow, xrow) in o[..rows * cols]
            .chunks_exact_mut(cols)
            .zip(x.chunks_exact(cols))
        {
            let m = xrow.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let mut s = 0.0f32;
            for (o, &v) in orow.iter_mut().zip(xrow) {
                *o = (v - m).exp();
                s += *o;
            }
            orow.iter_mut().for_each(|o| *o /= s);
        }
        Ok(())
    }

    pub(super) fn softmax_bwd(
        &self,
        y: &CpuStorage,
        dy: &CpuStorage,
        dx: &mut CpuStorage,
        rows: usize,
        cols: usize,
    ) -> Result<()> {
        let (y, dy, dx) = (
            y.f32s("softmax_bwd")?,
            dy.f32s("softmax_bwd")?,
            dx.f32s_mut("softmax_bwd")?,
        );
        for r in 0..rows {
            let sl = r * cols..(r + 1) * cols;
            let dot: f32 = y[sl.clone()]
                .iter()
                .zip(&dy[sl.clone()])
                .map(|(a, b)| a * b)
                .sum();
            for i in sl {
                dx[i] = y[i] * (dy[i] - dot);
            }
        }
        Ok(())
    }

    pub(super) fn softmax_ce(
        &self,
        logits: &CpuStorage,
        labels: &CpuStorage,
        probs: &mut CpuStorage,
        row_loss: &mut CpuStorage,
        rows: usize,
        cols: usize,
    ) -> Result<()> {
        const OP: &str = "softmax_cross_entropy";
        let labels = labels.u32s(OP)?;
        self.softmax(logits, probs, rows, cols)?;
        let (x, loss) = (logits.f32s(OP)?, row_loss.f32s_mut(OP)?);
        for r in 0..rows {
            let t = label_at(labels, r, cols, OP)?;
            let row = &x[r * cols..(r + 1) * cols];
            let m = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let log_sum = row.iter().map(|&v| (v - m).exp()).sum::<f32>().ln();
            // (m - x[t]) first: exact for large logits, where m + log_sum would round.
            loss[r] = log_sum + (m - row[t]);
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn softmax_ce_bwd(
        &self,
        probs: &CpuStorage,
        labels: &CpuStorage,
        dout: Option<&CpuStorage>,
        dx: &mut CpuStorage,
        rows: usize,
        cols: usize,
        scale: f32,
    ) -> Result<()> {
        const OP: &str = "softmax_cross_entropy_backward";
        let scale = match dout {
            Some(d) => scale * d.f32s(OP)?.first().copied().unwrap_or(0.0),
            None => scale,
        };
        let (p, labels, dx) = (probs.f32s(OP)?, labels.u32s(OP)?, dx.f32s_mut(OP)?);
        for r in 0..rows {
            let t = label_at(labels, r, cols, OP)?;
            for c in 0..cols {
                let i = r * cols + c;
                dx[i] = (p[i] - if c == t { 1.0 } else { 0.0 }) * scale;
            }
        }
        Ok(())
    }
}
