//! Dispatch of `shaders/cast.wgsl`: f32 ↔ f16 conversion (adapters with `SHADER_F16`).

use super::u32_of;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::gpu::buffers::GpuBuffer;
use crate::gpu::context::GpuContext;
use crate::gpu::kernels::{cast as k, uniform};
use crate::gpu::pipelines::KernelKey;
use std::sync::Arc;

uniform! {
    /// `Params` of `shaders/cast.wgsl`.
    pub(crate) struct CastParams {
        n: u32,
        _p0: u32,
        _p1: u32,
        _p2: u32,
    }
}

impl GpuContext {
    /// Converts `src` (f32 ↔ f16) into a new buffer.
    pub(crate) fn convert(self: &Arc<Self>, src: &GpuBuffer, dtype: DType) -> Result<GpuBuffer> {
        const OP: &str = "to_dtype";
        if !self.supports_f16() {
            return Err(Error::UnsupportedDType {
                op: OP,
                dtype: DType::F16,
                why: format!(
                    "on adapter \"{}\": it lacks SHADER_F16",
                    self.summary().name
                ),
            });
        }
        let out = self.alloc_buffer(src.numel, dtype, OP)?;
        let p = CastParams {
            n: u32_of(OP, src.numel)?,
            _p0: 0,
            _p1: 0,
            _p2: 0,
        };
        let (kernel, bindings) = match (src.dtype, dtype) {
            (DType::F32, DType::F16) => (&k::F32_TO_F16, [(1, &out), (2, src)]),
            (DType::F16, DType::F32) => (&k::F16_TO_F32, [(3, &out), (4, src)]),
            (from, to) => {
                return Err(Error::UnsupportedDType {
                    op: OP,
                    dtype: to,
                    why: format!("as a conversion from {from}"),
                });
            }
        };
        let groups = self.grid(src.numel, 256)?;
        self.dispatch(
            &KernelKey::new(kernel),
            bytemuck::bytes_of(&p),
            &bindings,
            groups,
        )?;
        Ok(out)
    }
}
