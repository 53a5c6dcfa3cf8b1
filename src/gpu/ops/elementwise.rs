//! Dispatch of `shaders/elementwise.wgsl`: fill, axpy, dropout and random fills, one thread
//! per element, and categorical draws, one thread per row.
//! (Every other elementwise op is the strided `pointwise.rs`.)

use super::u32_of;
use crate::error::Result;
use crate::gpu::buffers::GpuBuffer;
use crate::gpu::context::GpuContext;
use crate::gpu::kernels::{KernelDef, elementwise as k, uniform};
use crate::gpu::pipelines::KernelKey;
use crate::ops::{Distribution, DropoutSpec, RandomSpec};

uniform! {
    /// `Params` of `shaders/elementwise.wgsl`.
    #[derive(Default)]
    pub(crate) struct EltParams {
        n: u32,
        alpha: f32,
        beta: f32,
        seed: u32,
        offset: u32,
        cols: u32,
        _p1: u32,
        _p2: u32,
    }
}

impl EltParams {
    /// `n` elements with the scalar `alpha`.
    fn new(op: &'static str, n: usize, alpha: f32) -> Result<EltParams> {
        Ok(EltParams {
            n: u32_of(op, n)?,
            alpha,
            ..Default::default()
        })
    }

    /// `n` elements of a dropout with `spec`.
    fn dropout(op: &'static str, n: usize, spec: &DropoutSpec) -> Result<EltParams> {
        Ok(EltParams {
            alpha: spec.ratio,
            beta: spec.scale,
            seed: spec.seed,
            offset: spec.offset,
            ..EltParams::new(op, n, 0.0)?
        })
    }
}

impl GpuContext {
    /// One thread per element; `bufs` bind slots 1, 2, … in order.
    fn elementwise(
        &self,
        kernel: &'static KernelDef,
        p: EltParams,
        bufs: &[&GpuBuffer],
    ) -> Result<()> {
        let bindings: Vec<(u32, &GpuBuffer)> = bufs
            .iter()
            .enumerate()
            .map(|(i, b)| (i as u32 + 1, *b))
            .collect();
        self.elementwise_at(kernel, p, &bindings)
    }

    /// One thread per element (or row) with `bindings` at their slots.
    fn elementwise_at(
        &self,
        kernel: &'static KernelDef,
        p: EltParams,
        bindings: &[(u32, &GpuBuffer)],
    ) -> Result<()> {
        let groups = self.grid(p.n as usize, 256)?;
        self.dispatch(
            &KernelKey::new(kernel),
            bytemuck::bytes_of(&p),
            bindings,
            groups,
        )
    }

    /// `y += alpha · x` over `n` elements.
    pub(super) fn axpy_impl(
        &self,
        alpha: f32,
        x: &GpuBuffer,
        y: &mut GpuBuffer,
        n: usize,
    ) -> Result<()> {
        self.elementwise(&k::AXPY, EltParams::new("axpy", n, alpha)?, &[y, x])
    }

    /// `out = value` over `n` elements.
    pub(super) fn fill_impl(&self, out: &mut GpuBuffer, value: f32, n: usize) -> Result<()> {
        self.elementwise(&k::FILL, EltParams::new("fill", n, value)?, &[out])
    }

    /// A dropout keep-mask (scaled) of `n` elements.
    pub(super) fn dropout_mask_impl(
        &self,
        out: &mut GpuBuffer,
        n: usize,
        spec: &DropoutSpec,
    ) -> Result<()> {
        let p = EltParams::dropout("dropout_mask", n, spec)?;
        self.elementwise(&k::DROPOUT_MASK, p, &[out])
    }

    /// `n` random values of `spec`.
    pub(super) fn fill_random_impl(
        &self,
        out: &mut GpuBuffer,
        n: usize,
        spec: &RandomSpec,
    ) -> Result<()> {
        let (kernel, alpha, beta) = match spec.dist {
            Distribution::Uniform { low, high } => (&k::FILL_UNIFORM, low, high),
            Distribution::Normal { mean, std } => (&k::FILL_NORMAL, mean, std),
        };
        let p = EltParams {
            beta,
            seed: spec.seed,
            offset: spec.offset,
            ..EltParams::new("fill_random", n, alpha)?
        };
        self.elementwise(kernel, p, &[out])
    }

    /// One categorical draw per row of the logits `x` `[rows, cols]` into the u32 `out`.
    pub(super) fn sample_categorical_impl(
        &self,
        x: &GpuBuffer,
        out: &mut GpuBuffer,
        rows: usize,
        cols: usize,
        seed: u32,
        offset: u32,
    ) -> Result<()> {
        const OP: &str = "sample_categorical";
        let p = EltParams {
            seed,
            offset,
            cols: u32_of(OP, cols)?,
            ..EltParams::new(OP, rows, 0.0)?
        };
        self.elementwise_at(&k::CATEGORICAL, p, &[(4, out), (2, x)])
    }

    /// `out = x · mask` with the mask regenerated from `spec`.
    pub(super) fn dropout_apply_impl(
        &self,
        x: &GpuBuffer,
        out: &mut GpuBuffer,
        n: usize,
        spec: &DropoutSpec,
    ) -> Result<()> {
        let p = EltParams::dropout("dropout", n, spec)?;
        self.elementwise(&k::DROPOUT_APPLY, p, &[out, x])
    }
}
