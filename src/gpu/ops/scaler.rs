//! Dispatch of `shaders/scaler.wgsl`: the dynamic loss scaler of mixed-precision training,
//! whose state (scale, growth counter, overflow flag) lives on the device as four atomic u32.

use super::u32_of;
use crate::error::Result;
use crate::gpu::buffers::GpuBuffer;
use crate::gpu::context::GpuContext;
use crate::gpu::kernels::{KernelDef, scaler as k, uniform};
use crate::gpu::pipelines::KernelKey;

uniform! {
    /// `Params` of `shaders/scaler.wgsl`.
    pub(crate) struct ScalerParams {
        n: u32,
        growth_interval: u32,
        init_bits: u32,
        _p0: u32,
    }
}

impl ScalerParams {
    fn new(n: u32, growth_interval: u32, init_bits: u32) -> ScalerParams {
        ScalerParams {
            n,
            growth_interval,
            init_bits,
            _p0: 0,
        }
    }
}

impl GpuContext {
    /// One thread per element of `x` against the loss-scaler `state`.
    fn scaler_elementwise(
        &self,
        kernel: &'static KernelDef,
        x: &GpuBuffer,
        state: &GpuBuffer,
        n: usize,
    ) -> Result<()> {
        let p = ScalerParams::new(u32_of("scaler", n)?, 0, 0);
        self.dispatch(
            &KernelKey::new(kernel),
            bytemuck::bytes_of(&p),
            &[(1, x), (2, state)],
            self.grid(n, 256)?,
        )
    }

    /// A single-thread kernel on the state alone.
    fn scaler_state(
        &self,
        kernel: &'static KernelDef,
        state: &GpuBuffer,
        p: ScalerParams,
    ) -> Result<()> {
        self.dispatch(
            &KernelKey::new(kernel),
            bytemuck::bytes_of(&p),
            &[(2, state)],
            [1, 1, 1],
        )
    }

    /// Sets the scale to `init_scale` and clears the counters.
    pub(super) fn scaler_init_impl(&self, state: &mut GpuBuffer, init_scale: f32) -> Result<()> {
        self.scaler_state(
            &k::INIT,
            state,
            ScalerParams::new(1, 0, init_scale.to_bits()),
        )
    }

    /// `x *= scale`.
    pub(super) fn scaler_scale_impl(
        &self,
        x: &mut GpuBuffer,
        state: &GpuBuffer,
        n: usize,
    ) -> Result<()> {
        self.scaler_elementwise(&k::SCALE_IN_PLACE, x, state, n)
    }

    /// Flags the state when `x` holds a non-finite value.
    pub(super) fn scaler_check_impl(
        &self,
        x: &GpuBuffer,
        state: &mut GpuBuffer,
        n: usize,
    ) -> Result<()> {
        self.scaler_elementwise(&k::NONFINITE, x, state, n)
    }

    /// Backs the scale off after an overflow, or grows it every `growth_interval` good steps.
    pub(super) fn scaler_update_impl(
        &self,
        state: &mut GpuBuffer,
        growth_interval: u32,
    ) -> Result<()> {
        self.scaler_state(&k::UPDATE, state, ScalerParams::new(1, growth_interval, 0))
    }
}
