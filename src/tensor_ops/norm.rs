//! Batch normalisation's fused training-mode forward and backward.

use super::*;

impl Tensor {
    /// Training-mode batch normalisation of an f32 view `[N, C, S]` with scale and shift
    /// `gamma`, `beta` `[C]`: each channel normalised by the mean and (biased) variance of its
    /// N·S values. Returns `(y [N, C, S], mean [C], var [C])`; the statistics are outside the
    /// graph (for running averages). Fused kernels both ways (`shaders/norm.wgsl`): the
    /// backward is `dx = γ/(σ·m)·(m·dy - Σdy - x̂·Σdy·x̂)`, `dγ = Σ dy·x̂`, `dβ = Σ dy`.
    /// f32 only: under mixed precision [`crate::nn::BatchNorm`] casts to f32 first (1/σ² of a
    /// near-constant channel overflows f16).
    pub(crate) fn batch_norm_train(
        &self,
        gamma: &Tensor,
        beta: &Tensor,
        eps: f32,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        const OP: &str = "batch_norm";
        for t in [self, gamma, beta] {
            if t.dtype != DType::F32 {
                return Err(Error::DTypeMismatch {
                    op: OP,
                    expected: DType::F32,
                    got: t.dtype,
                });
            }
        }
        let &[n, c, s] = self.dims() else {
            return Err(Error::invalid(
                OP,
                format!("expected a [N, C, S] view, got {}", self.shape),
            ));
        };
        for t in [gamma, beta] {
            if t.dims() != [c] {
                return Err(Error::shapes(
                    OP,
                    &self.shape,
                    &t.shape,
                    format!("gamma and beta must be [{c}]"),
                ));
            }
        }
        if n * s == 0 {
            return Err(Error::invalid(OP, "no values to normalise"));
        }
        let g = BnGeom { n, c, s, eps };
        let dt = DType::F32;
        let (y, saved, var) = backend!(OP, dt, [self => x, gamma => gb, beta => bb], |be| {
            let mut saved = be.alloc(2 * c, dt, OP)?;
            let mut var = be.alloc(c, dt, OP)?;
            be.bn_stats(x, &mut saved, &mut var, &g)?;
            let mut y = be.alloc(n * c * s, dt, OP)?;
            be.bn_apply(x, &saved, gb, bb, &mut y, &g)?;
            Ok((
                Tensor::from_parts(self.shape.clone(), dt, y.into()),
                Tensor::from_parts(Shape::new([2 * c]), dt, saved.into()),
                Tensor::from_parts(Shape::new([c]), dt, var.into()),
            ))
        })?;
        let mean = saved.narrow(0, 0, c)?;
        let (x, gam, sv) = (self.detach(), gamma.detach(), saved);
        let y = record(y, OP, &[self, gamma, beta], move |d| {
            const OP: &str = "batch_norm_backward";
            let (dx, dg, db) = backend!(OP, dt, [x => xb, d => dyb, sv => sb, gam => gb], |be| {
                let mut dg = be.alloc(c, dt, OP)?;
                let mut dbeta = be.alloc(c, dt, OP)?;
                be.bn_bwd_reduce(xb, dyb, sb, &mut dg, &mut dbeta, &g)?;
                let mut dx = be.alloc(n * c * s, dt, OP)?;
                be.bn_bwd_dx(xb, dyb, sb, gb, &dg, &dbeta, &mut dx, &g)?;
                Ok((
                    Tensor::from_parts(x.shape.clone(), dt, dx.into()),
                    Tensor::from_parts(Shape::new([c]), dt, dg.into()),
                    Tensor::from_parts(Shape::new([c]), dt, dbeta.into()),
                ))
            })?;
            Ok(vec![Some(dx), Some(dg), Some(db)])
        });
        Ok((y, mean, var))
    }
}
