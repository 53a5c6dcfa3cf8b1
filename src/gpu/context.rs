//! One opened adapter: device, queue, limits, pipeline cache, buffer pool, pending work and
//! counters. Everything a GPU tensor needs hangs off an `Arc<GpuContext>`.

use super::buffers::{BufferPool, GpuBuffer, size_class};
use super::encoder::{ARENA_BYTES, BindKey, Pending};
use super::faults::{FAULT_BYTES, FAULT_SLOT, Faults};
use super::ops::{ConvPath, GemmConfig, MatmulKernel, TuneKey};
use super::pipelines::{KernelKey, PipelineCache};
use super::profile::Profiler;
use crate::device::{AdapterSummary, INSTALL_HINT};
use crate::dtype::DType;
use crate::error::{Error, Result};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use wgpu::util::DeviceExt;

/// Activity and memory counters of a GPU context (tests and benches read them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Command buffers submitted.
    pub submits: u64,
    /// Compute dispatches recorded.
    pub dispatches: u64,
    /// Bytes copied host → device (tensor data; kernel parameters excluded).
    pub bytes_uploaded: u64,
    /// Bytes copied device → host.
    pub bytes_read_back: u64,
    /// Bytes in storage buffers that exist (held by tensors or pooled).
    pub live_buffer_bytes: u64,
    /// Bytes in storage buffers held by live tensors.
    pub in_use_bytes: u64,
    /// Storage buffers created since the context opened.
    pub buffers_created: u64,
    /// Compute pipelines compiled.
    pub pipelines: u64,
    /// Bind groups created (the rest of the dispatches found theirs in the cache).
    pub bind_groups_created: u64,
}

impl Counters {
    /// Counter differences `self - earlier` (memory fields are taken from `self`).
    pub fn since(&self, earlier: &Counters) -> Counters {
        Counters {
            submits: self.submits - earlier.submits,
            dispatches: self.dispatches - earlier.dispatches,
            bytes_uploaded: self.bytes_uploaded - earlier.bytes_uploaded,
            bytes_read_back: self.bytes_read_back - earlier.bytes_read_back,
            bind_groups_created: self.bind_groups_created - earlier.bind_groups_created,
            ..*self
        }
    }
}

/// An opened wgpu adapter with everything wgnn keeps per device.
pub struct GpuContext {
    pub(crate) device: wgpu::Device,
    pub(crate) queue: wgpu::Queue,
    summary: AdapterSummary,
    pub(crate) features: wgpu::Features,
    /// Largest storage binding, which bounds every tensor.
    pub(crate) max_binding: u64,
    pub(crate) max_groups: u32,
    /// Storage buffers one shader stage may bind.
    pub(crate) max_storage_buffers: u32,
    uniform_align: u64,
    pub(crate) pipelines: PipelineCache,
    pool: Mutex<BufferPool>,
    pending: Mutex<Pending>,
    arena: wgpu::Buffer,
    /// Bad input the kernels found, checked at the next readback.
    faults: Faults,
    submits: AtomicU64,
    dispatches: AtomicU64,
    uploaded: AtomicU64,
    read_back: AtomicU64,
    bind_groups_created: AtomicU64,
    error: Arc<Mutex<Option<String>>>,
    pub(crate) matmul_kernel: AtomicU8,
    pub(crate) conv_path: AtomicU8,
    /// The tiled kernel's forced rows per workgroup (0: chosen per shape).
    pub(crate) tile_rows: AtomicU32,
    pub(crate) relu_mask_in_gemm: AtomicBool,
    /// Whether the reductions use subgroup operations (see [`GpuContext::set_subgroups`]).
    subgroups: AtomicBool,
    /// GEMM autotune switch and its measured choices (see [`GpuContext::autotune`]).
    pub(crate) autotune: AtomicBool,
    tuned: Mutex<HashMap<TuneKey, (GemmConfig, f64)>>,
}

/// Whether subgroup reductions can run: the feature, and subgroups whose per-subgroup sums
/// fit the 256-thread kernels' layout (a power of two from 4 to 128 invocations).
fn subgroups_usable(features: wgpu::Features, (min, max): (u32, u32)) -> bool {
    features.contains(wgpu::Features::SUBGROUP) && min >= 4 && max <= 128
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl GpuContext {
    pub(crate) fn new(adapter: wgpu::Adapter, index: usize) -> Result<GpuContext> {
        let info = adapter.get_info();
        let mut summary = crate::device::summarize(index, &adapter);
        // f16 kernels where the adapter has them; timestamp queries for kernel profiles;
        // subgroup operations for the reductions.
        let mut features = adapter.features()
            & (wgpu::Features::SHADER_F16
                | wgpu::Features::TIMESTAMP_QUERY
                | wgpu::Features::SUBGROUP);
        // WGNN_DISABLE_F16=1 opens the device without SHADER_F16, as on adapters that lack it
        // (to check the f32 fallbacks and the errors on a machine whose adapter has f16).
        if std::env::var("WGNN_DISABLE_F16").is_ok_and(|v| v == "1") {
            features.remove(wgpu::Features::SHADER_F16);
            summary.shader_f16 = false;
        }
        let limits = adapter.limits();
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("wgnn"),
            required_features: features,
            required_limits: limits.clone(),
            ..Default::default()
        }))
        .map_err(|e| {
            Error::NoAdapter(format!(
                "could not open adapter \"{}\": {e}; {INSTALL_HINT}",
                info.name
            ))
        })?;
        let error = Arc::new(Mutex::new(None::<String>));
        let sink = error.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            let mut slot = lock(&sink);
            if slot.is_none() {
                *slot = Some(e.to_string());
            }
        }));
        let arena = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("wgnn uniform arena"),
            size: ARENA_BYTES,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let faults = Faults::new(&device);
        let subgroups = subgroups_usable(features, summary.subgroup_sizes);
        let kernel =
            MatmulKernel::from_env().unwrap_or(MatmulKernel::default_for(info.device_type));
        Ok(GpuContext {
            max_binding: limits
                .max_storage_buffer_binding_size
                .min(limits.max_buffer_size),
            max_groups: limits.max_compute_workgroups_per_dimension,
            max_storage_buffers: limits.max_storage_buffers_per_shader_stage,
            uniform_align: limits.min_uniform_buffer_offset_alignment as u64,
            device,
            queue,
            summary,
            features,
            pipelines: PipelineCache::default(),
            pool: Mutex::new(BufferPool::default()),
            pending: Mutex::new(Pending::default()),
            arena,
            faults,
            submits: AtomicU64::new(0),
            dispatches: AtomicU64::new(0),
            uploaded: AtomicU64::new(0),
            read_back: AtomicU64::new(0),
            bind_groups_created: AtomicU64::new(0),
            error,
            matmul_kernel: AtomicU8::new(kernel as u8),
            conv_path: AtomicU8::new(ConvPath::from_env().unwrap_or(ConvPath::Implicit) as u8),
            tile_rows: AtomicU32::new(0),
            relu_mask_in_gemm: AtomicBool::new(info.device_type != wgpu::DeviceType::Cpu),
            subgroups: AtomicBool::new(subgroups),
            autotune: AtomicBool::new(std::env::var("WGNN_AUTOTUNE").is_ok_and(|v| v == "1")),
            tuned: Mutex::new(HashMap::new()),
        })
    }

    /// What the adapter is and supports.
    pub fn summary(&self) -> &AdapterSummary {
        &self.summary
    }

    /// Whether the reductions (column sums of each row, accuracy counts) run with subgroup
    /// operations: on by default where the adapter has `Features::SUBGROUP` with subgroups of
    /// 4 to 128 invocations; the workgroup-tree kernels otherwise.
    pub fn uses_subgroups(&self) -> bool {
        self.subgroups.load(Ordering::Relaxed)
    }

    /// Switches the reductions between the subgroup kernels and the workgroup-tree ones
    /// (tests compare the two). Asking for subgroups where the adapter cannot is an error.
    pub fn set_subgroups(&self, on: bool) -> Result<()> {
        if on && !subgroups_usable(self.features, self.summary.subgroup_sizes) {
            return Err(self.gpu_err(format!(
                "subgroup reductions need Features::SUBGROUP with subgroups of 4 to 128 \
                 invocations (this adapter: {}, sizes {}..{})",
                if self.features.contains(wgpu::Features::SUBGROUP) {
                    "SUBGROUP"
                } else {
                    "no SUBGROUP"
                },
                self.summary.subgroup_sizes.0,
                self.summary.subgroup_sizes.1
            )));
        }
        self.subgroups.store(on, Ordering::Relaxed);
        Ok(())
    }

    /// Autotune's choices by shape class.
    pub(crate) fn tuned_gemms_map(&self) -> MutexGuard<'_, HashMap<TuneKey, (GemmConfig, f64)>> {
        lock(&self.tuned)
    }

    /// Whether f16 kernels can run here.
    pub fn supports_f16(&self) -> bool {
        self.features.contains(wgpu::Features::SHADER_F16)
    }

    /// Storage buffers one kernel may bind on this adapter (a multi-tensor optimizer step
    /// needs 29; with fewer it updates one tensor per dispatch).
    pub fn max_storage_buffers_per_stage(&self) -> u32 {
        self.max_storage_buffers
    }

    /// The largest tensor in bytes this adapter can hold in one storage binding.
    pub fn max_tensor_bytes(&self) -> u64 {
        self.max_binding
    }

    /// Current counters.
    pub fn counters(&self) -> Counters {
        let pool = lock(&self.pool);
        Counters {
            submits: self.submits.load(Ordering::Relaxed),
            dispatches: self.dispatches.load(Ordering::Relaxed),
            bytes_uploaded: self.uploaded.load(Ordering::Relaxed),
            bytes_read_back: self.read_back.load(Ordering::Relaxed),
            live_buffer_bytes: pool.allocated,
            in_use_bytes: pool.in_use,
            buffers_created: pool.created,
            pipelines: self.pipelines.len() as u64,
            bind_groups_created: self.bind_groups_created.load(Ordering::Relaxed),
        }
    }

    /// Releases pooled (unused) buffers; returns the bytes freed.
    pub fn trim_pool(&self) -> u64 {
        // Cached bind groups may bind the buffers about to be destroyed.
        lock(&self.pending).clear_bind_groups();
        lock(&self.pool).trim()
    }

    fn gpu_err(&self, msg: impl Into<String>) -> Error {
        Error::Gpu {
            adapter: self.summary.name.clone(),
            msg: msg.into(),
        }
    }

    /// The first error wgpu reported asynchronously, if any (it is reported once).
    fn take_error(&self) -> Result<()> {
        match lock(&self.error).take() {
            Some(msg) => Err(self.gpu_err(msg)),
            None => Ok(()),
        }
    }

    /// A pooled storage buffer for `numel` elements of `dtype`; contents unspecified.
    pub(crate) fn alloc_buffer(
        self: &Arc<Self>,
        numel: usize,
        dtype: DType,
        what: &str,
    ) -> Result<GpuBuffer> {
        let bytes = (numel as u64).saturating_mul(dtype.size() as u64);
        if bytes > self.max_binding {
            return Err(Error::BufferTooLarge {
                what: what.to_string(),
                bytes,
                limit: self.max_binding,
                adapter: self.summary.name.clone(),
            });
        }
        let class = size_class(bytes.div_ceil(4) * 4, self.max_binding);
        let pooled = lock(&self.pool).take(class);
        let (buffer, id) = match pooled {
            Some(b) => b,
            None => {
                let b = self.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("wgnn tensor"),
                    size: class,
                    usage: wgpu::BufferUsages::STORAGE
                        | wgpu::BufferUsages::COPY_SRC
                        | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                });
                let id = lock(&self.pool).record_new(class);
                (b, id)
            }
        };
        Ok(GpuBuffer {
            buffer: Some(buffer),
            id,
            class,
            dtype,
            numel,
            ctx: self.clone(),
        })
    }

    pub(crate) fn release(&self, class: u64, buffer: wgpu::Buffer, id: u64) {
        lock(&self.pool).give_back(class, buffer, id);
    }

    /// A new buffer holding `bytes`, uploaded through a staging copy recorded in the pending
    /// encoder (so it is ordered after earlier work that may still use a recycled buffer).
    pub(crate) fn upload(
        self: &Arc<Self>,
        bytes: &[u8],
        dtype: DType,
        numel: usize,
    ) -> Result<GpuBuffer> {
        let buf = self.alloc_buffer(numel, dtype, "upload")?;
        if bytes.is_empty() {
            return Ok(buf);
        }
        let mut padded;
        let data = if bytes.len().is_multiple_of(4) {
            bytes
        } else {
            padded = bytes.to_vec();
            padded.resize(bytes.len().div_ceil(4) * 4, 0);
            &padded
        };
        let staging = self
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("wgnn upload"),
                contents: data,
                usage: wgpu::BufferUsages::COPY_SRC,
            });
        let mut pending = lock(&self.pending);
        pending.encoder(&self.device).copy_buffer_to_buffer(
            &staging,
            0,
            buf.raw(),
            0,
            data.len() as u64,
        );
        self.uploaded
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        Ok(buf)
    }

    /// A buffer of zeros.
    pub(crate) fn zeros(self: &Arc<Self>, numel: usize, dtype: DType) -> Result<GpuBuffer> {
        let buf = self.alloc_buffer(numel, dtype, "zeros")?;
        let bytes = (buf.byte_len().div_ceil(4) * 4).min(buf.class);
        if bytes > 0 {
            lock(&self.pending)
                .encoder(&self.device)
                .clear_buffer(buf.raw(), 0, Some(bytes));
        }
        Ok(buf)
    }

    /// A copy of the first `bytes` of `src` in a new buffer.
    pub(crate) fn copy_buffer(
        self: &Arc<Self>,
        src: &GpuBuffer,
        bytes: usize,
        dtype: DType,
        numel: usize,
    ) -> Result<GpuBuffer> {
        let dst = self.alloc_buffer(numel, dtype, "copy")?;
        let len = (bytes as u64).div_ceil(4) * 4;
        if len > 0 {
            lock(&self.pending)
                .encoder(&self.device)
                .copy_buffer_to_buffer(src.raw(), 0, dst.raw(), 0, len);
        }
        Ok(dst)
    }

    /// Records a copy of `src`'s elements into `dst` (same length).
    pub(crate) fn copy_into(&self, src: &GpuBuffer, dst: &mut GpuBuffer) -> Result<()> {
        let len = src.byte_len().min(dst.byte_len()).div_ceil(4) * 4;
        if len > 0 {
            lock(&self.pending)
                .encoder(&self.device)
                .copy_buffer_to_buffer(src.raw(), 0, dst.raw(), 0, len);
        }
        Ok(())
    }

    /// Records one compute dispatch: `params` go to the uniform arena (binding 0), `bindings`
    /// are (binding, buffer) pairs, `groups` the workgroup counts. The bindings must be exactly
    /// the kernel's slots and `params` its shader's `Params` ([`KernelDef::check`]), or the
    /// dispatch is refused with an error naming the shader, entry and slot.
    ///
    /// [`KernelDef::check`]: super::kernels::KernelDef::check
    pub(crate) fn dispatch(
        &self,
        key: &KernelKey,
        params: &[u8],
        bindings: &[(u32, &GpuBuffer)],
        groups: [u32; 3],
    ) -> Result<()> {
        // The contract: exactly the kernel's slots, and its shader's parameter struct.
        key.kernel
            .check(params.len(), bindings.iter().map(|b| b.0))
            .map_err(|e| self.gpu_err(e))?;
        if groups.contains(&0) {
            return Ok(());
        }
        // Kernels follow their data: any f16 operand selects the f16 instance.
        let f16 = bindings.iter().any(|(_, b)| b.dtype == DType::F16);
        let key = key.dtype(if f16 { DType::F16 } else { DType::F32 });
        if groups.iter().any(|&g| g > self.max_groups) {
            return Err(self.gpu_err(format!(
                "{}::{}: dispatch {groups:?} exceeds {} workgroups per dimension",
                key.shader().file(),
                key.entry(),
                self.max_groups
            )));
        }
        let kernel = self.pipelines.get(&self.device, &self.summary.name, &key)?;
        let mut pending = lock(&self.pending);
        if pending.profiler.as_ref().is_some_and(|p| p.full()) {
            self.submit_locked(&mut pending)?;
        }
        let offset = match pending.push_params(params, self.uniform_align) {
            Some(o) => o,
            None => {
                self.submit_locked(&mut pending)?;
                pending
                    .push_params(params, self.uniform_align)
                    .ok_or_else(|| {
                        self.gpu_err("kernel parameters larger than the uniform arena")
                    })?
            }
        };
        let size = wgpu::BufferSize::new((params.len() as u64).div_ceil(16) * 16);
        let bind_key = BindKey::new(key, offset, bindings).ok_or_else(|| {
            self.gpu_err(format!(
                "{}::{}: {} buffers bound, more than a bind-group key holds",
                key.shader().file(),
                key.entry(),
                bindings.len()
            ))
        })?;
        let reports_faults = key.kernel.slot(FAULT_SLOT).is_some();
        if reports_faults {
            self.faults.arm();
        }
        let bind_group = pending.bind_group(bind_key, || {
            self.bind_groups_created.fetch_add(1, Ordering::Relaxed);
            let mut entries = Vec::with_capacity(bindings.len() + 1);
            entries.push(wgpu::BindGroupEntry {
                binding: 0,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: &self.arena,
                    offset,
                    size,
                }),
            });
            for &(binding, buffer) in bindings {
                entries.push(wgpu::BindGroupEntry {
                    binding,
                    resource: buffer.raw().as_entire_binding(),
                });
            }
            if reports_faults {
                entries.push(self.faults.bind());
            }
            self.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(key.entry()),
                layout: &kernel.layout,
                entries: &entries,
            })
        });
        let timed = pending.profiler.is_some();
        let pass = if timed {
            pending.timed_pass(&self.device)
        } else {
            pending.pass(&self.device)
        };
        pass.set_pipeline(&kernel.pipeline);
        pass.set_bind_group(0, &bind_group, &[]);
        pass.dispatch_workgroups(groups[0], groups[1], groups[2]);
        if timed {
            let name = format!("{}::{}", key.shader().file(), key.entry());
            pending.timed((name, key.constants().to_vec(), groups));
        }
        self.dispatches.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Workgroup counts for `items` work items in groups of `per_group`, folded into two
    /// dimensions when one would exceed the adapter's limit (kernels rebuild the flat index).
    pub(crate) fn grid(&self, items: usize, per_group: usize) -> Result<[u32; 3]> {
        let groups = items.div_ceil(per_group) as u64;
        let max = self.max_groups as u64;
        if groups <= max {
            return Ok([groups as u32, 1, 1]);
        }
        let y = groups.div_ceil(max);
        if y > max {
            return Err(self.gpu_err(format!("{items} work items exceed the dispatch limits")));
        }
        Ok([max as u32, y as u32, 1])
    }

    fn submit_locked(&self, pending: &mut Pending) -> Result<()> {
        if let Some(mut encoder) = pending.take_encoder() {
            if !pending.arena.is_empty() {
                self.queue.write_buffer(&self.arena, 0, &pending.arena);
            }
            if let Some(p) = &pending.profiler {
                p.resolve(&mut encoder);
            }
            self.queue.submit(Some(encoder.finish()));
            self.submits.fetch_add(1, Ordering::Relaxed);
            if let Some(p) = pending.profiler.as_mut() {
                p.collect(&self.device, self.queue.get_timestamp_period())
                    .map_err(|e| self.gpu_err(e))?;
            }
        }
        pending.arena.clear();
        self.take_error()
    }

    /// Whether this adapter has timestamp queries (`TIMESTAMP_QUERY`), which
    /// [`GpuContext::profile_kernels`] needs.
    pub fn supports_timestamps(&self) -> bool {
        self.features.contains(wgpu::Features::TIMESTAMP_QUERY)
    }

    /// Runs `f` with every dispatch it records timed on the GPU, and returns its result with
    /// the GPU time of each dispatch, in order. Work recorded before is submitted first (and
    /// not timed). While the profile is open each dispatch gets a compute pass of its own and
    /// each submit waits for its timestamps, so the times are the kernels' own, but the run
    /// is slower than an unprofiled one. An error from `f` closes the profile and is returned.
    pub fn profile_kernels<R>(
        &self,
        f: impl FnOnce() -> Result<R>,
    ) -> Result<(R, Vec<crate::gpu::KernelTime>)> {
        if !self.supports_timestamps() {
            return Err(self.gpu_err(
                "kernel timestamps need TIMESTAMP_QUERY, which this adapter does not offer",
            ));
        }
        {
            let mut pending = lock(&self.pending);
            if pending.profiler.is_some() {
                return Err(self.gpu_err("a kernel profile is already open on this device"));
            }
            self.submit_locked(&mut pending)?;
            pending.profiler = Some(Profiler::new(&self.device));
        }
        let result = f();
        let mut pending = lock(&self.pending);
        let submitted = self.submit_locked(&mut pending);
        let profiler = pending.profiler.take();
        let r = result?;
        submitted?;
        Ok((r, profiler.map(|p| p.done).unwrap_or_default()))
    }

    /// Submits everything recorded so far (one command buffer). Does not wait.
    pub fn flush(&self) -> Result<()> {
        let mut pending = lock(&self.pending);
        self.submit_locked(&mut pending)
    }

    /// Submits and waits until the GPU is idle.
    pub fn sync(&self) -> Result<()> {
        self.flush()?;
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| self.gpu_err(format!("waiting for the GPU: {e}")))?;
        self.take_error()
    }

    /// Whether work is recorded but not submitted.
    pub fn has_pending(&self) -> bool {
        !lock(&self.pending).is_empty()
    }

    /// Reads the first `bytes` of `src` back to the host: records a copy into a mappable
    /// buffer, submits (one submit together with any pending work) and waits.
    pub(crate) fn read(&self, src: &GpuBuffer, bytes: usize) -> Result<Vec<u8>> {
        Ok(self.read_many(&[(src, bytes)])?.pop().unwrap_or_default())
    }

    /// Reads several buffers with one copy pass, one submit and one wait.
    /// When a kernel that reports bad input ran since the last readback, its fault record is
    /// read too (16 bytes more in the same copy pass), and a fault is this read's error.
    pub(crate) fn read_many(&self, srcs: &[(&GpuBuffer, usize)]) -> Result<Vec<Vec<u8>>> {
        let mut offsets = Vec::with_capacity(srcs.len());
        let mut total = 0u64;
        for &(_, bytes) in srcs {
            offsets.push(total);
            // Copies and map offsets must be 4- and 8-byte aligned respectively.
            total += (bytes as u64).div_ceil(8) * 8;
        }
        let faults_at = self.faults.take_armed().then_some(total);
        if faults_at.is_some() {
            total += FAULT_BYTES;
        }
        if total == 0 {
            return Ok(srcs.iter().map(|_| Vec::new()).collect());
        }
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("wgnn readback"),
            size: total,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        {
            let mut pending = lock(&self.pending);
            let encoder = pending.encoder(&self.device);
            for (&(src, bytes), &off) in srcs.iter().zip(&offsets) {
                let len = (bytes as u64).div_ceil(4) * 4;
                if len > 0 {
                    encoder.copy_buffer_to_buffer(src.raw(), 0, &staging, off, len);
                }
            }
            if let Some(at) = faults_at {
                self.faults.copy_to(encoder, &staging, at);
            }
            self.submit_locked(&mut pending)?;
        }
        let (tx, rx) = futures_intrusive::channel::shared::oneshot_channel();
        staging.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| self.gpu_err(format!("waiting for a readback: {e}")))?;
        match pollster::block_on(rx.receive()) {
            Some(Ok(())) => {}
            Some(Err(e)) => return Err(self.gpu_err(format!("mapping a readback buffer: {e}"))),
            None => return Err(self.gpu_err("readback was cancelled")),
        }
        self.take_error()?;
        let (out, fault) = {
            let view = staging
                .get_mapped_range(..)
                .map_err(|e| self.gpu_err(format!("reading a mapped buffer: {e}")))?;
            let out: Vec<Vec<u8>> = srcs
                .iter()
                .zip(&offsets)
                .map(|(&(_, bytes), &off)| view[off as usize..off as usize + bytes].to_vec())
                .collect();
            let fault = faults_at.and_then(|at| {
                self.faults
                    .check(&view[at as usize..], &self.queue, &self.summary.name)
            });
            (out, fault)
        };
        staging.unmap();
        if let Some(e) = fault {
            return Err(e);
        }
        let bytes: usize = srcs.iter().map(|s| s.1).sum();
        self.read_back.fetch_add(bytes as u64, Ordering::Relaxed);
        Ok(out)
    }
}

impl Drop for GpuContext {
    fn drop(&mut self) {
        // Submit what is recorded so nothing is silently lost; errors have nowhere to go here.
        let _ = self.flush();
    }
}
