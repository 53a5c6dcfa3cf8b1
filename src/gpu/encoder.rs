//! Record, then submit: the pending command encoder, its open compute pass, the uniform arena
//! and the bind-group cache.
//!
//! Ops append dispatches to one compute pass of one pending encoder per device; the pass is
//! closed only when a copy or clear must be recorded, or at submit (while a kernel profile is
//! open, each dispatch gets a timed pass of its own: `profile.rs`). Their small parameter structs
//! are packed into a host-side arena (one slot per dispatch, aligned to the adapter's uniform
//! offset alignment) that is uploaded with a single `write_buffer` just before the encoder is
//! submitted. A training step therefore costs one submit and one parameter upload, however
//! many kernels it runs. When the arena fills up the batch is submitted early and the arena
//! restarts (queue order keeps the earlier batch's parameters intact).

use super::GpuBuffer;
use super::pipelines::{FastMap, KernelKey};
use super::profile::{Profiler, Recorded};
use std::hash::{Hash, Hasher};

/// Size of the uniform arena: with 256-byte slots, 4096 dispatches per submit.
pub(crate) const ARENA_BYTES: u64 = 1 << 20;

/// Bind groups kept before the cache is emptied (a training step needs one per dispatch).
const BIND_GROUP_CACHE: usize = 8192;

/// Storage buffers one bind-group key can name (the multi-tensor optimizer binds 29).
const MAX_BOUND: usize = 32;

/// What a bind group binds: the kernel (its layout), the parameter slot, and each binding's
/// buffer by id. Plain data: building and hashing one allocates nothing and clones no handle
/// (ids are never reused, so a key cannot name a buffer that replaced a destroyed one).
pub(crate) struct BindKey {
    kernel: KernelKey,
    offset: u64,
    buffers: [(u32, u64); MAX_BOUND],
    len: usize,
}

impl BindKey {
    /// The key of `kernel` at arena `offset` over `bindings`; `None` past [`MAX_BOUND`].
    pub fn new(kernel: KernelKey, offset: u64, bindings: &[(u32, &GpuBuffer)]) -> Option<BindKey> {
        if bindings.len() > MAX_BOUND {
            return None;
        }
        let mut buffers = [(0, 0); MAX_BOUND];
        for (slot, &(binding, b)) in buffers.iter_mut().zip(bindings) {
            *slot = (binding, b.id);
        }
        Some(BindKey {
            kernel,
            offset,
            buffers,
            len: bindings.len(),
        })
    }

    fn bound(&self) -> &[(u32, u64)] {
        &self.buffers[..self.len]
    }
}

impl PartialEq for BindKey {
    fn eq(&self, other: &Self) -> bool {
        self.offset == other.offset && self.bound() == other.bound() && self.kernel == other.kernel
    }
}

impl Eq for BindKey {}

impl Hash for BindKey {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.kernel.hash(h);
        h.write_u64(self.offset);
        for &(binding, id) in self.bound() {
            h.write_u64(id ^ ((binding as u64) << 56));
        }
    }
}

/// Work recorded but not yet submitted.
#[derive(Default)]
pub(crate) struct Pending {
    encoder: Option<wgpu::CommandEncoder>,
    pass: Option<wgpu::ComputePass<'static>>,
    pub arena: Vec<u8>,
    /// Bind groups by what they bind: a training loop records the same dispatches at the
    /// same arena offsets with the same pooled buffers every step, so after the first step
    /// every bind group is found here instead of created.
    bind_groups: FastMap<BindKey, wgpu::BindGroup>,
    /// The open kernel profile, if any: each dispatch then gets a timed pass of its own.
    pub profiler: Option<Profiler>,
}

fn new_encoder(device: &wgpu::Device) -> wgpu::CommandEncoder {
    device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
        label: Some("wgnn step"),
    })
}

impl Pending {
    /// The encoder, created on first use, with no compute pass open (for copies and clears).
    pub fn encoder(&mut self, device: &wgpu::Device) -> &mut wgpu::CommandEncoder {
        self.pass = None;
        self.encoder.get_or_insert_with(|| new_encoder(device))
    }

    /// A new compute pass for one dispatch whose beginning and end write the profiler's next
    /// pair of timestamps (only while a profile is open). Close it with [`Pending::timed`].
    pub fn timed_pass(&mut self, device: &wgpu::Device) -> &mut wgpu::ComputePass<'static> {
        self.begin_pass(device, true)
    }

    /// Closes any open pass and begins one, timed by the profiler when `timed`.
    fn begin_pass(
        &mut self,
        device: &wgpu::Device,
        timed: bool,
    ) -> &mut wgpu::ComputePass<'static> {
        self.pass = None;
        let encoder = self.encoder.get_or_insert_with(|| new_encoder(device));
        let writes = match &self.profiler {
            Some(p) if timed => Some(p.next_writes()),
            _ => None,
        };
        let pass = encoder
            .begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some(if timed { "wgnn timed" } else { "wgnn" }),
                timestamp_writes: writes,
            })
            .forget_lifetime();
        self.pass.insert(pass)
    }

    /// Ends the timed pass of a dispatch.
    pub fn timed(&mut self, dispatch: Recorded) {
        self.pass = None;
        if let Some(p) = self.profiler.as_mut() {
            p.recorded(dispatch);
        }
    }

    /// The open compute pass, begun on first use.
    pub fn pass(&mut self, device: &wgpu::Device) -> &mut wgpu::ComputePass<'static> {
        if self.pass.is_none() {
            return self.begin_pass(device, false);
        }
        self.pass.as_mut().expect("checked above")
    }

    /// The encoder to submit (its pass closed), leaving nothing pending.
    pub fn take_encoder(&mut self) -> Option<wgpu::CommandEncoder> {
        self.pass = None;
        self.encoder.take()
    }

    /// The cached bind group for `key`, created by `make` on a miss.
    pub fn bind_group(
        &mut self,
        key: BindKey,
        make: impl FnOnce() -> wgpu::BindGroup,
    ) -> wgpu::BindGroup {
        if let Some(g) = self.bind_groups.get(&key) {
            return g.clone();
        }
        if self.bind_groups.len() >= BIND_GROUP_CACHE {
            self.bind_groups.clear();
        }
        let g = make();
        self.bind_groups.insert(key, g.clone());
        g
    }

    /// Forgets every cached bind group (before buffers they bind are destroyed).
    pub fn clear_bind_groups(&mut self) {
        self.bind_groups.clear();
    }

    /// Reserves an arena slot for `params`; `None` when the arena is full (flush first).
    pub fn push_params(&mut self, params: &[u8], align: u64) -> Option<u64> {
        let offset = (self.arena.len() as u64).div_ceil(align) * align;
        let slot = (params.len() as u64).div_ceil(16) * 16;
        if offset + slot.max(align) > ARENA_BYTES {
            return None;
        }
        self.arena.resize(offset as usize, 0);
        self.arena.extend_from_slice(params);
        self.arena.resize((offset + slot) as usize, 0);
        Some(offset)
    }

    pub fn is_empty(&self) -> bool {
        self.encoder.is_none()
    }
}
