//! The wgpu backend: one [`GpuContext`] per opened adapter.
//!
//! - `context.rs`   adapter/device/queue, limits, counters, flush/sync/read
//! - `pipelines.rs` WGSL sources and the lazy pipeline cache
//! - `kernels.rs`   the Rust ↔ WGSL contract: every dispatched entry point with its bindings
//!   and uniform struct, checked against the shaders by its `contract` test
//! - `buffers.rs`   the size-classed buffer pool and [`GpuBuffer`]
//! - `encoder.rs`   the pending command encoder and the per-dispatch uniform arena
//! - `faults.rs`    bad input a kernel finds (an out-of-range label), reported at the next
//!   readback
//! - `ops/`         the [`Backend`](crate::ops::Backend) implementation: the dispatch code of each
//!   op family in `ops/<family>.rs` beside `shaders/<family>.wgsl` (`gemm.rs` ↔ `matmul.wgsl`)

mod buffers;
mod context;
mod encoder;
mod faults;
pub(crate) mod kernels;
mod ops;
mod pipelines;
mod profile;

pub use buffers::GpuBuffer;
pub use context::{Counters, GpuContext};
pub use ops::{ConvPath, GemmConfig, MatmulKernel, OptimSlot};
pub use pipelines::Shader;
pub use profile::KernelTime;

/// The key of a kernel of the table (for the benchmark microkernels in [`crate::bench`]).
pub(crate) fn kernel_key(kernel: &'static kernels::KernelDef) -> pipelines::KernelKey {
    pipelines::KernelKey::new(kernel)
}
