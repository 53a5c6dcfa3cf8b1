//! Dispatch of `shaders/augment.wgsl`: on-device data augmentation (flip, affine,
//! brightness, contrast, and the elastic field in two passes).

use super::u32_of;
use crate::dtype::DType;
use crate::error::Result;
use crate::gpu::buffers::GpuBuffer;
use crate::gpu::context::GpuContext;
use crate::gpu::kernels::{augment as k, uniform};
use crate::gpu::pipelines::KernelKey;
use crate::ops::AugmentSpec;
use std::sync::Arc;

uniform! {
    /// `Params` of `shaders/augment.wgsl`.
    pub(crate) struct AugmentParams {
        n: u32,
        c: u32,
        h: u32,
        w: u32,
        seed: u32,
        offset: u32,
        flip: u32,
        radius: u32,
        rotate: f32,
        scale: f32,
        shift: f32,
        brightness: f32,
        contrast: f32,
        alpha: f32,
        sigma: f32,
        _p3: f32,
    }
}

impl GpuContext {
    /// Augments the NCHW batch `x` into `out` as `spec` says.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn augment_impl(
        self: &Arc<Self>,
        x: &GpuBuffer,
        out: &mut GpuBuffer,
        n: usize,
        c: usize,
        h: usize,
        w: usize,
        spec: &AugmentSpec,
    ) -> Result<()> {
        const OP: &str = "augment";
        let p = AugmentParams {
            n: u32_of(OP, n)?,
            c: u32_of(OP, c)?,
            h: u32_of(OP, h)?,
            w: u32_of(OP, w)?,
            seed: spec.seed,
            offset: spec.offset,
            flip: spec.flip as u32,
            radius: u32_of(OP, spec.elastic_radius())?,
            rotate: spec.rotate,
            scale: spec.scale,
            shift: spec.shift,
            brightness: spec.brightness,
            contrast: spec.contrast,
            alpha: spec.elastic_alpha,
            sigma: spec.elastic_sigma,
            _p3: 0.0,
        };
        let groups = self.grid(n * c * h * w, 256)?;
        if !spec.elastic() {
            return self.dispatch(
                &KernelKey::new(&k::AUGMENT),
                bytemuck::bytes_of(&p),
                &[(1, &*out), (2, x)],
                groups,
            );
        }
        // The field's horizontal pass over every row the vertical pass reads.
        let rows_len = n * 2 * (h + 2 * spec.elastic_radius()) * w;
        let rows = self.alloc_buffer(rows_len, DType::F32, "augment: elastic rows")?;
        self.dispatch(
            &KernelKey::new(&k::ELASTIC_ROWS),
            bytemuck::bytes_of(&p),
            &[(3, &rows)],
            self.grid(rows_len, 256)?,
        )?;
        self.dispatch(
            &KernelKey::new(&k::AUGMENT_ELASTIC),
            bytemuck::bytes_of(&p),
            &[(1, &*out), (2, x), (3, &rows)],
            groups,
        )
    }
}
