//! Bad input found by a kernel, reported at the next readback: a kernel that can meet an
//! out-of-range label (the fused softmax-cross-entropy) has the context's fault record bound
//! at [`FAULT_SLOT`] and writes into it; the record is copied into the staging buffer of the
//! next readback the program does anyway (the training loop's loss readback, a `to_vec`), so
//! checking costs a 16-byte copy and no extra synchronisation. A fault turns that readback
//! into an error naming the op, the label and the row.
//!
//! The record is four u32: the first faulting row (`atomicMin`, `u32::MAX` when clean), the
//! largest bad label (`atomicMax`), the class count and the op's code ([`FAULT_OPS`]).

use crate::error::Error;
use std::sync::atomic::{AtomicBool, Ordering};

/// The binding of the fault record in every shader that reports faults (the context binds it
/// itself; a dispatch never names it).
pub(crate) const FAULT_SLOT: u32 = 63;

/// The ops that report faults, by the code their kernel writes (code 0 is unused).
const FAULT_OPS: [&str; 2] = ["", "softmax_cross_entropy"];

/// Bytes of the record.
pub(super) const FAULT_BYTES: u64 = 16;

/// The record's clean state.
const CLEAN: [u32; 4] = [u32::MAX, 0, 0, 0];

/// A context's fault record and whether a kernel that may write it ran since the last check.
pub(super) struct Faults {
    buffer: wgpu::Buffer,
    armed: AtomicBool,
}

impl Faults {
    pub(super) fn new(device: &wgpu::Device) -> Faults {
        use wgpu::util::DeviceExt;
        let buffer = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("wgnn fault record"),
            contents: bytemuck::cast_slice(&CLEAN),
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
        });
        Faults {
            buffer,
            armed: AtomicBool::new(false),
        }
    }

    /// The bind-group entry of the record, for a kernel with a [`FAULT_SLOT`]; the next
    /// readback checks the record.
    pub(super) fn bind(&self) -> wgpu::BindGroupEntry<'_> {
        wgpu::BindGroupEntry {
            binding: FAULT_SLOT,
            resource: self.buffer.as_entire_binding(),
        }
    }

    /// Marks the record as possibly written (called for every dispatch that binds it).
    pub(super) fn arm(&self) {
        self.armed.store(true, Ordering::Release);
    }

    /// Whether the next readback must check the record (and clears the mark: the caller
    /// copies it with [`Faults::copy_to`]).
    pub(super) fn take_armed(&self) -> bool {
        self.armed.swap(false, Ordering::AcqRel)
    }

    /// Records a copy of the record to `staging` at `offset`.
    pub(super) fn copy_to(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        staging: &wgpu::Buffer,
        offset: u64,
    ) {
        encoder.copy_buffer_to_buffer(&self.buffer, 0, staging, offset, FAULT_BYTES);
    }

    /// The error a copied record reports (`None` when clean); a fault resets the record (the
    /// reset runs before the next submit).
    pub(super) fn check(&self, bytes: &[u8], queue: &wgpu::Queue, device: &str) -> Option<Error> {
        let r: [u32; 4] = bytemuck::pod_read_unaligned(bytes.get(..FAULT_BYTES as usize)?);
        if r[0] == u32::MAX {
            return None;
        }
        queue.write_buffer(&self.buffer, 0, bytemuck::cast_slice(&CLEAN));
        let [row, label, classes, code] = r;
        let op = FAULT_OPS
            .get(code as usize)
            .copied()
            .unwrap_or("a GPU kernel");
        Some(Error::invalid(
            op,
            format!(
                "labels outside the {classes} classes 0..={}: the first at row {row}, the \
                 largest {label} (found by the kernel on {device}, reported at this readback)",
                classes.saturating_sub(1)
            ),
        ))
    }
}
