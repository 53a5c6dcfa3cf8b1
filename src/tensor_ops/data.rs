//! Data-side ops: byte gathers from a device-resident dataset, embeddings, one-hot,
//! dropout (mask regenerated from a counter hash), augmentation and bilinear resizing.

use super::*;

impl Tensor {
    /// Gathers `count` rows of a packed byte matrix (`self`: u32 words holding `row_len`-byte
    /// rows, little-endian) at the row indices `perm[offset..offset + count]`. With `dtype`
    /// F32 the bytes are scaled by `scale` (→ `[count, row_len]` f32); with U32 they are copied.
    pub(crate) fn gather_bytes(
        &self,
        perm: &Tensor,
        offset: usize,
        count: usize,
        row_len: usize,
        scale: f32,
        dtype: DType,
    ) -> Result<Tensor> {
        const OP: &str = "gather_bytes";
        want(OP, self, DType::U32)?;
        want(OP, perm, DType::U32)?;
        if offset
            .checked_add(count)
            .is_none_or(|end| end > perm.numel())
        {
            return Err(Error::invalid(
                OP,
                format!(
                    "{count} rows from {offset} of a permutation of {}",
                    perm.numel()
                ),
            ));
        }
        if count.checked_mul(row_len).is_none() {
            return Err(Error::invalid(
                OP,
                format!("{count} rows of {row_len} bytes: the size overflows"),
            ));
        }
        if dtype == DType::F16 {
            return Err(Error::UnsupportedDType {
                op: OP,
                dtype,
                why: "as an output yet".into(),
            });
        }
        let dt = self.dtype;
        backend!(OP, dt, [self => src, perm => pm], |be| {
            let mut out = be.alloc(count * row_len, dtype, OP)?;
            be.gather_bytes(src, pm, offset, count, row_len, scale, &mut out)?;
            Ok(Tensor::from_parts(Shape::new([count, row_len]), dtype, out.into()))
        })
    }

    /// Embedding lookup: row `idx[i]` of this table `[V, D]` for every u32 index of `idx`
    /// → `idx.shape + [D]`. The CPU refuses an index ≥ V naming it; a GPU kernel cannot
    /// report one without a readback and gives a zero row. Backward: `dW = one_hot(idx)ᵀ · dy`,
    /// the scatter-add of the rows' gradients as a matmul (deterministic; WGSL has no float
    /// atomics).
    pub fn embedding(&self, idx: &Tensor) -> Result<Tensor> {
        const OP: &str = "embedding";
        want_float(OP, self, self.dtype)?;
        want(OP, idx, DType::U32)?;
        let &[v, d] = self.dims() else {
            return Err(Error::invalid(
                OP,
                format!("the table must be [rows, dim], got {}", self.shape),
            ));
        };
        let count = idx.numel();
        let mut od = idx.dims().to_vec();
        od.push(d);
        let dt = self.dtype;
        crate::tensor::checked_len(OP, &Shape::new(od.clone()), dt)?;
        let out = if count == 0 || d == 0 {
            // No rows to gather (the kernels walk rows of d elements).
            Tensor::zeros(od, dt, &self.device())?
        } else {
            backend!(OP, dt, [self => table, idx => ib], |be| {
                let mut out = be.alloc(count * d, dt, OP)?;
                be.gather_rows(table, ib, &mut out, count, d)?;
                Ok(Tensor::from_parts(Shape::new(od.clone()), dt, out.into()))
            })?
        };
        let idx = idx.detach();
        Ok(record(out, OP, &[self], move |g| {
            let onehot = idx.one_hot(v, g.dtype)?;
            Ok(vec![Some(onehot.matmul_t(
                &g.reshape([count, d])?,
                true,
                false,
            )?)])
        }))
    }

    /// Dropout as one op: `self * mask` with the mask of [`crate::ops::Kernels::dropout_mask`] for `spec`
    /// (same values as `self.mul(&mask)`), whose backward multiplies the gradient by the same
    /// mask. A GPU regenerates the mask from its counter hash in both passes instead of
    /// storing it: one dispatch each way.
    pub fn dropout(&self, spec: &DropoutSpec) -> Result<Tensor> {
        const OP: &str = "dropout";
        if !(0.0..1.0).contains(&spec.ratio) {
            return Err(Error::invalid(
                OP,
                format!("ratio must be in [0, 1), got {}", spec.ratio),
            ));
        }
        want_float(OP, self, self.dtype)?;
        let n = self.numel();
        let dt = self.dtype;
        let spec = *spec;
        let out = backend!(OP, dt, [self => x], |be| {
            let mut out = be.alloc(n, dt, OP)?;
            be.dropout_apply(x, &mut out, n, &spec, dt)?;
            Ok(Tensor::from_parts(self.shape.clone(), dt, out.into()))
        })?;
        Ok(record(out, OP, &[self], move |g| {
            Ok(vec![Some(g.dropout(&spec)?)])
        }))
    }

    /// A dropout mask: element i is `spec.scale` when the counter hash of `(seed, offset + i)`
    /// is ≥ `ratio`, else 0. The same mask on every device.
    pub(crate) fn dropout_mask(
        shape: impl Into<Shape>,
        spec: &DropoutSpec,
        device: &Device,
    ) -> Result<Tensor> {
        Tensor::dropout_mask_as(shape, DType::F32, spec, device)
    }

    /// [`Tensor::dropout_mask`] of a float `dtype` (the dtype of the activations it masks).
    pub(crate) fn dropout_mask_as(
        shape: impl Into<Shape>,
        dtype: DType,
        spec: &DropoutSpec,
        device: &Device,
    ) -> Result<Tensor> {
        const OP: &str = "dropout_mask";
        if !(0.0..1.0).contains(&spec.ratio) {
            return Err(Error::invalid(
                OP,
                format!("ratio must be in [0, 1), got {}", spec.ratio),
            ));
        }
        if !dtype.is_float() {
            return Err(Error::DTypeMismatch {
                op: OP,
                expected: DType::F32,
                got: dtype,
            });
        }
        let shape = shape.into();
        let n = crate::tensor::checked_len(OP, &shape, dtype)?;
        let storage = match device {
            Device::Cpu => {
                let mut m = CpuBackend.alloc(n, DType::F32, OP)?;
                CpuBackend.dropout_mask(&mut m, n, spec)?;
                Storage::Cpu(m.convert(dtype)?)
            }
            Device::Gpu(ctx) => {
                let mut m = ctx.alloc(n, dtype, OP)?;
                ctx.dropout_mask(&mut m, n, spec)?;
                Storage::Gpu(m)
            }
        };
        Ok(Tensor::from_parts(shape, dtype, storage))
    }

    /// f32 random values of `spec`, drawn where they are stored: a GPU fills them in one
    /// dispatch (nothing uploaded), the CPU computes the same expressions.
    pub(crate) fn random(
        shape: impl Into<Shape>,
        spec: &crate::ops::RandomSpec,
        device: &Device,
    ) -> Result<Tensor> {
        use crate::ops::Distribution;
        const OP: &str = "random";
        let ok = match spec.dist {
            Distribution::Uniform { low, high } => {
                low.is_finite() && high.is_finite() && low <= high
            }
            Distribution::Normal { mean, std } => mean.is_finite() && std.is_finite() && std >= 0.0,
        };
        if !ok {
            return Err(Error::invalid(
                OP,
                format!(
                    "{:?}: needs finite parameters, low ≤ high and std ≥ 0",
                    spec.dist
                ),
            ));
        }
        let shape = shape.into();
        let n = crate::tensor::checked_len(OP, &shape, DType::F32)?;
        // A normal fill takes two draws per value from a 32-bit counter.
        if matches!(spec.dist, Distribution::Normal { .. }) && n > 1 << 31 {
            return Err(Error::invalid(
                OP,
                format!("{shape}: at most 2^31 normal values per fill"),
            ));
        }
        let storage = match device {
            Device::Cpu => {
                let mut m = CpuBackend.alloc(n, DType::F32, OP)?;
                CpuBackend.fill_random(&mut m, n, spec)?;
                Storage::Cpu(m)
            }
            Device::Gpu(ctx) => {
                let mut m = ctx.alloc(n, DType::F32, OP)?;
                ctx.fill_random(&mut m, n, spec)?;
                Storage::Gpu(m)
            }
        };
        Ok(Tensor::from_parts(shape, DType::F32, storage))
    }

    /// One categorical draw per row of logits `[.., K]` (unnormalised log-probabilities along
    /// the last dimension) → u32 `[..]`, drawn where the tensor lives from the counter hash of
    /// `(seed, offset + row)`: row r picks the first k whose running sum of `exp(x − max)`
    /// exceeds `u·total`. The CPU and a GPU pick the same k but where `u·total` falls within
    /// rounding of a boundary. At most 65,535 categories (a GPU thread's loop bound).
    pub(crate) fn sample_categorical(&self, seed: u32, offset: u32) -> Result<Tensor> {
        const OP: &str = "sample_categorical";
        want_float(OP, self, self.dtype)?;
        let Some((&k, batch)) = self.dims().split_last() else {
            return Err(Error::invalid(OP, "logits need at least one dimension"));
        };
        if !(1..=65_535).contains(&k) {
            return Err(Error::invalid(
                OP,
                format!(
                    "logits {}: 1 to 65,535 categories along the last dimension",
                    self.shape
                ),
            ));
        }
        let rows = self.numel() / k;
        let logits = self.to_dtype(DType::F32)?;
        let dt = DType::F32;
        let out = backend!(OP, dt, [logits => x], |be| {
            let mut out = be.alloc(rows, DType::U32, OP)?;
            be.sample_categorical(x, &mut out, rows, k, seed, offset)?;
            Ok(Tensor::from_parts(Shape::new(batch.to_vec()), DType::U32, out.into()))
        })?;
        Ok(out)
    }

    /// Random augmentation of a batch of NCHW images in [0, 1] (`spec`: rotation, scale,
    /// shift, flip, brightness, contrast; image `i` seeded by `(spec.seed, spec.offset + i)`,
    /// so a seed gives the same images on every device). An input-pipeline op, like
    /// [`Tensor::resize_bilinear`]: not differentiable.
    pub fn augment(&self, spec: &crate::ops::AugmentSpec) -> Result<Tensor> {
        const OP: &str = "augment";
        want_float(OP, self, self.dtype)?;
        let &[n, c, h, w] = self.dims() else {
            return Err(Error::invalid(
                OP,
                format!("expected NCHW images, got {}", self.shape),
            ));
        };
        let bounds = [
            spec.rotate,
            spec.scale,
            spec.shift,
            spec.brightness,
            spec.contrast,
            spec.elastic_alpha,
            spec.elastic_sigma,
        ];
        if bounds.iter().any(|b| !b.is_finite() || *b < 0.0) || spec.scale >= 1.0 {
            return Err(Error::invalid(
                OP,
                format!("bounds must be finite and ≥ 0 (scale < 1): {spec:?}"),
            ));
        }
        if spec.elastic() && !(0.25..=32.0).contains(&spec.elastic_sigma) {
            return Err(Error::invalid(
                OP,
                format!(
                    "elastic_sigma must be in [0.25, 32] pixels when elastic_alpha > 0, got {}",
                    spec.elastic_sigma
                ),
            ));
        }
        if crate::autograd::wants_grad(&[self]) {
            return Err(Error::invalid(
                OP,
                "not differentiable: augment inputs before they enter the graph (or detach)",
            ));
        }
        let dt = self.dtype;
        if self.numel() == 0 {
            // No images, or images without pixels (the kernels walk whole planes).
            return Tensor::zeros(self.shape.clone(), dt, &self.device());
        }
        backend!(OP, dt, [self => x], |be| {
            let mut out = be.alloc(n * c * h * w, dt, OP)?;
            be.augment(x, &mut out, n, c, h, w, spec)?;
            Ok(Tensor::from_parts(self.shape.clone(), dt, out.into()))
        })
    }

    /// Bilinear resize of an NCHW tensor to `[N, C, oh, ow]` (PyTorch's
    /// `interpolate(mode="bilinear", align_corners=False)`, no antialiasing: meant for
    /// enlarging inputs, as d2l resizes Fashion-MNIST to 224 or 96 pixels). An input-pipeline
    /// op: not differentiable, so it refuses a tensor that requires a gradient.
    pub fn resize_bilinear(&self, oh: usize, ow: usize) -> Result<Tensor> {
        const OP: &str = "resize_bilinear";
        want_float(OP, self, self.dtype)?;
        let &[n, c, h, w] = self.dims() else {
            return Err(Error::invalid(
                OP,
                format!("expected an NCHW tensor, got {}", self.shape),
            ));
        };
        if oh == 0 || ow == 0 || h == 0 || w == 0 {
            return Err(Error::invalid(
                OP,
                format!("cannot resize {} to {oh}x{ow}", self.shape),
            ));
        }
        if crate::shape::checked_product(&[n, c, oh, ow]).is_none() {
            return Err(Error::invalid(
                OP,
                format!("{} resized to {oh}x{ow}: the size overflows", self.shape),
            ));
        }
        if crate::autograd::wants_grad(&[self]) {
            return Err(Error::invalid(
                OP,
                "not differentiable: resize inputs before they enter the graph (or detach)",
            ));
        }
        let dt = self.dtype;
        backend!(OP, dt, [self => x], |be| {
            let mut out = be.alloc(n * c * oh * ow, dt, OP)?;
            be.resize_bilinear(x, &mut out, n * c, h, w, oh, ow)?;
            Ok(Tensor::from_parts(Shape::new([n, c, oh, ow]), dt, out.into()))
        })
    }
}
