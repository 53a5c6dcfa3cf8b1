//! Record, then submit: the pending command encoder and the uniform arena.
//!
//! Ops append compute passes to one pending encoder per device. Their small parameter structs
//! are packed into a host-side arena (one slot per dispatch, aligned to the adapter's uniform
//! offset alignment) that is uploaded with a single `write_buffer` just before the encoder is
//! submitted. A training step therefore costs one submit and one parameter upload, however
//! many kernels it runs. When the arena fills up the batch is submitted early and the arena
//! restarts (queue order keeps the earlier batch's parameters intact).

/// Size of the uniform arena: with 256-byte slots, 4096 dispatches per submit.
pub(crate) const ARENA_BYTES: u64 = 1 << 20;

/// Work recorded but not yet submitted.
#[derive(Default)]
pub(crate) struct Pending {
    pub encoder: Option<wgpu::CommandEncoder>,
    pub arena: Vec<u8>,
}

impl Pending {
    /// The encoder, created on first use.
    pub fn encoder(&mut self, device: &wgpu::Device) -> &mut wgpu::CommandEncoder {
        self.encoder.get_or_insert_with(|| {
            device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("wgnn step"),
            })
        })
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
