//! GPU time per kernel from timestamp queries (`Features::TIMESTAMP_QUERY`).
//!
//! While a profile is open ([`GpuContext::profile_kernels`](super::GpuContext::profile_kernels))
//! every dispatch runs in a compute pass of its own whose beginning and end write a timestamp;
//! each submit resolves them and reads them back. Profiling therefore waits for the GPU at
//! every submit and adds a pass per dispatch: it measures where the GPU's time goes, it does
//! not train at full speed.

/// GPU time of one recorded dispatch.
#[derive(Clone, Debug, PartialEq)]
pub struct KernelTime {
    /// The kernel, as `shader.wgsl::entry`.
    pub kernel: String,
    /// The kernel's override constants (e.g. the GEMM's `MODE`: 0 matmul, 1 conv forward,
    /// 2 conv input gradient, 3 conv weight gradient).
    pub constants: Vec<(&'static str, u32)>,
    /// Workgroups dispatched (x, y, z).
    pub groups: [u32; 3],
    /// GPU time from the beginning to the end of the dispatch's pass, in seconds.
    pub seconds: f64,
}

/// Dispatches one submit may time (two queries each); a profile submits when it is full.
pub(crate) const PROFILE_DISPATCHES: u32 = 1024;

/// A timed dispatch: kernel, its constants, workgroups.
pub(crate) type Recorded = (String, Vec<(&'static str, u32)>, [u32; 3]);

/// The query set and buffers of an open profile, and what it measured so far.
pub(crate) struct Profiler {
    queries: wgpu::QuerySet,
    resolve: wgpu::Buffer,
    readback: wgpu::Buffer,
    /// Kernels recorded since the last submit, in query order.
    recorded: Vec<Recorded>,
    /// Finished measurements, in dispatch order.
    pub done: Vec<KernelTime>,
}

impl Profiler {
    pub fn new(device: &wgpu::Device) -> Profiler {
        let bytes = 16 * PROFILE_DISPATCHES as u64;
        let buffer = |label, usage| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: bytes,
                usage,
                mapped_at_creation: false,
            })
        };
        Profiler {
            queries: device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("wgnn kernel timestamps"),
                ty: wgpu::QueryType::Timestamp,
                count: 2 * PROFILE_DISPATCHES,
            }),
            resolve: buffer(
                "wgnn timestamp resolve",
                wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            ),
            readback: buffer(
                "wgnn timestamp readback",
                wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            ),
            recorded: Vec::new(),
            done: Vec::new(),
        }
    }

    /// Whether every query pair of this submit is taken.
    pub fn full(&self) -> bool {
        self.recorded.len() as u32 >= PROFILE_DISPATCHES
    }

    /// The timestamp writes of the next dispatch's pass.
    pub fn next_writes(&self) -> wgpu::ComputePassTimestampWrites<'_> {
        let i = 2 * self.recorded.len() as u32;
        wgpu::ComputePassTimestampWrites {
            query_set: &self.queries,
            beginning_of_pass_write_index: Some(i),
            end_of_pass_write_index: Some(i + 1),
        }
    }

    /// Notes the kernel whose pass took the last pair of queries.
    pub fn recorded(&mut self, dispatch: Recorded) {
        self.recorded.push(dispatch);
    }

    /// Records the resolve of this submit's queries and their copy to the readback buffer.
    pub fn resolve(&self, encoder: &mut wgpu::CommandEncoder) {
        let n = self.recorded.len() as u32;
        if n > 0 {
            encoder.resolve_query_set(&self.queries, 0..2 * n, &self.resolve, 0);
            encoder.copy_buffer_to_buffer(&self.resolve, 0, &self.readback, 0, 16 * n as u64);
        }
    }

    /// After the submit that resolved them: waits for the timestamps, and turns each pair
    /// into a [`KernelTime`] (`period_ns`: nanoseconds per timestamp tick).
    pub fn collect(&mut self, device: &wgpu::Device, period_ns: f32) -> Result<(), String> {
        let n = self.recorded.len();
        if n == 0 {
            return Ok(());
        }
        let (tx, rx) = futures_intrusive::channel::shared::oneshot_channel();
        self.readback
            .map_async(wgpu::MapMode::Read, ..16 * n as u64, move |r| {
                let _ = tx.send(r);
            });
        device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| format!("waiting for kernel timestamps: {e}"))?;
        match pollster::block_on(rx.receive()) {
            Some(Ok(())) => {}
            Some(Err(e)) => return Err(format!("mapping kernel timestamps: {e}")),
            None => return Err("reading kernel timestamps was cancelled".into()),
        }
        let ticks: Vec<u64> = {
            let view = self
                .readback
                .get_mapped_range(..16 * n as u64)
                .map_err(|e| format!("reading kernel timestamps: {e}"))?;
            view.chunks_exact(8)
                .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
                .collect()
        };
        self.readback.unmap();
        for ((kernel, constants, groups), pair) in
            self.recorded.drain(..).zip(ticks.chunks_exact(2))
        {
            // A pass that ends "before" it begins (a reset or wrapped counter) counts as 0.
            let ticks = pair[1].saturating_sub(pair[0]);
            self.done.push(KernelTime {
                kernel,
                constants,
                groups,
                seconds: ticks as f64 * period_ns as f64 * 1e-9,
            });
        }
        Ok(())
    }
}
