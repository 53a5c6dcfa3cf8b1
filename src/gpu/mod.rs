//! The wgpu backend: one [`GpuContext`] per opened adapter.
//!
//! - `context.rs`   adapter/device/queue, limits, counters, flush/sync/read
//! - `pipelines.rs` WGSL sources and the lazy pipeline cache
//! - `buffers.rs`   the size-classed buffer pool and [`GpuBuffer`]
//! - `encoder.rs`   the pending command encoder and the per-dispatch uniform arena
//! - `ops/`         the [`Backend`](crate::ops::Backend) implementation (dispatches), one file per
//!   op family with more than one path: `gemm.rs` (matmul, implicit-GEMM convolution), `optim.rs`

mod buffers;
mod context;
mod encoder;
mod ops;
mod pipelines;
mod profile;

pub use buffers::GpuBuffer;
pub use context::{Counters, GpuContext};
pub use ops::{ConvPath, GemmConfig, MatmulKernel, OptimSlot};
pub use pipelines::Shader;
pub use profile::KernelTime;

/// The key of a kernel (for the benchmark microkernels in [`crate::bench`]).
pub(crate) fn kernel_key(shader: Shader, entry: &'static str) -> pipelines::KernelKey {
    pipelines::KernelKey::new(shader, entry)
}
