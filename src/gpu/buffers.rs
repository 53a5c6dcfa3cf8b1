//! Pooled storage buffers. Every GPU tensor owns a [`GpuBuffer`]; dropping it returns the
//! buffer to its size class in the context's pool, so a training loop that makes the same
//! tensors every step stops allocating after the first (memory stays flat over epochs).
//!
//! Reuse inside one pending command encoder is safe: commands execute in recording order,
//! and uploads are recorded as copies into that same encoder (see `GpuContext::upload`).

use super::context::GpuContext;
use crate::dtype::DType;
use std::collections::HashMap;
use std::sync::Arc;

/// Smallest buffer handed out (bytes): tiny tensors share one class.
const MIN_CLASS: u64 = 256;

/// The size class for a request: the next power of two, except near the adapter's limit,
/// where the request is rounded to 256 bytes so that rounding never exceeds the limit.
pub(crate) fn size_class(bytes: u64, limit: u64) -> u64 {
    let b = bytes.max(MIN_CLASS);
    let pow2 = b.next_power_of_two();
    if pow2 <= limit {
        pow2
    } else {
        b.div_ceil(256) * 256
    }
}

/// Free buffers by size class, each with its id (unique for the context's lifetime: the
/// bind-group cache keys on it).
#[derive(Default)]
pub(crate) struct BufferPool {
    free: HashMap<u64, Vec<(wgpu::Buffer, u64)>>,
    /// Bytes in buffers that exist (pooled or in use).
    pub(crate) allocated: u64,
    /// Bytes in buffers held by live tensors.
    pub(crate) in_use: u64,
    /// Buffers ever created.
    pub(crate) created: u64,
}

impl BufferPool {
    /// A free buffer of `class` bytes: the one with the lowest id, so that which buffer an
    /// allocation gets depends only on which are free, not on the order they were freed in —
    /// a training loop then binds the same buffers to the same kernels every step, and finds
    /// every bind group in the cache.
    pub(crate) fn take(&mut self, class: u64) -> Option<(wgpu::Buffer, u64)> {
        let list = self.free.get_mut(&class)?;
        let lowest = (0..list.len()).min_by_key(|&i| list[i].1)?;
        let b = list.swap_remove(lowest);
        self.in_use += class;
        Some(b)
    }

    /// Counts a new buffer of `class` bytes; returns its id.
    pub(crate) fn record_new(&mut self, class: u64) -> u64 {
        self.allocated += class;
        self.in_use += class;
        self.created += 1;
        self.created
    }

    pub(crate) fn give_back(&mut self, class: u64, buffer: wgpu::Buffer, id: u64) {
        self.in_use -= class;
        self.free.entry(class).or_default().push((buffer, id));
    }

    /// Destroys every pooled (unused) buffer; returns the bytes released.
    pub(crate) fn trim(&mut self) -> u64 {
        let mut freed = 0;
        for (class, list) in self.free.drain() {
            freed += class * list.len() as u64;
            for (b, _) in list {
                b.destroy();
            }
        }
        self.allocated -= freed;
        freed
    }
}

/// A storage buffer owned by one tensor; returns to the pool on drop.
pub struct GpuBuffer {
    pub(crate) buffer: Option<wgpu::Buffer>,
    /// The pooled buffer's id, unique in its context (the bind-group cache's key).
    pub(crate) id: u64,
    pub(crate) class: u64,
    pub(crate) dtype: DType,
    pub(crate) numel: usize,
    pub(crate) ctx: Arc<GpuContext>,
}

impl GpuBuffer {
    /// The context (device) this buffer belongs to.
    pub fn ctx(&self) -> &Arc<GpuContext> {
        &self.ctx
    }

    /// The wgpu buffer.
    pub(crate) fn raw(&self) -> &wgpu::Buffer {
        self.buffer.as_ref().expect("buffer present until drop")
    }

    /// Bytes of the elements (the buffer itself may be larger: its size class).
    pub fn byte_len(&self) -> u64 {
        (self.numel * self.dtype.size()) as u64
    }
}

impl Drop for GpuBuffer {
    fn drop(&mut self) {
        if let Some(b) = self.buffer.take() {
            self.ctx.release(self.class, b, self.id);
        }
    }
}
