//! Choosing where tensors live: the CPU backend or a wgpu adapter.
//!
//! `Device::auto()` prefers a hardware GPU (discrete, integrated, virtual), then the native CPU
//! backend. Software adapters such as lavapipe (`DeviceType::Cpu`) are ~15× slower than the
//! ndarray backend, so they are used only when asked for (`Device::gpu()`, `--device gpu`,
//! `WGNN_DEVICE=gpu`). The environment variable `WGNN_DEVICE=cpu|gpu|gpu:N|auto` overrides
//! what `auto()` would pick.

use crate::error::{Error, Result};
use crate::gpu::{Counters, GpuContext};
use std::fmt;
use std::sync::{Arc, Once, OnceLock};

/// What a user must do to get a GPU adapter on a headless Linux machine.
pub const INSTALL_HINT: &str = "install a Vulkan driver (on Debian/Ubuntu without a GPU: \
     `apt-get install mesa-vulkan-drivers libvulkan1` for the lavapipe software driver), \
     or use the CPU backend (--device cpu / WGNN_DEVICE=cpu)";

/// Where tensors live and ops run. Cheap to clone.
#[derive(Clone)]
pub enum Device {
    /// The ndarray CPU backend.
    Cpu,
    /// A wgpu adapter with its own device, queue, pipelines and buffer pool.
    Gpu(Arc<GpuContext>),
}

/// One adapter as seen by wgpu, with what wgnn cares about.
#[derive(Clone, Debug)]
pub struct AdapterSummary {
    /// Index for `Device::gpu_by_index` and `--device gpu:N`.
    pub index: usize,
    /// Adapter name (e.g. "llvmpipe (LLVM 15.0.6, 256 bits)").
    pub name: String,
    /// Graphics API (Vulkan, Metal, Dx12).
    pub backend: String,
    /// Discrete/integrated/virtual GPU, or Cpu for software rasterizers.
    pub device_type: wgpu::DeviceType,
    /// Driver name and version.
    pub driver: String,
    /// Whether f16 in shaders is supported.
    pub shader_f16: bool,
    /// Largest storage-buffer binding in bytes (the largest tensor wgnn can make there).
    pub max_storage_buffer_binding_size: u64,
    /// Largest buffer in bytes.
    pub max_buffer_size: u64,
    /// Largest workgroup (invocations).
    pub max_compute_invocations_per_workgroup: u32,
    /// Largest dispatch per dimension.
    pub max_compute_workgroups_per_dimension: u32,
    /// Subgroup size range.
    pub subgroup_sizes: (u32, u32),
}

impl AdapterSummary {
    /// True for hardware adapters (discrete, integrated or virtual GPUs).
    pub fn is_hardware(&self) -> bool {
        is_hardware(self.device_type)
    }
}

fn is_hardware(t: wgpu::DeviceType) -> bool {
    matches!(
        t,
        wgpu::DeviceType::DiscreteGpu
            | wgpu::DeviceType::IntegratedGpu
            | wgpu::DeviceType::VirtualGpu
    )
}

/// Preference order when several adapters exist: discrete first, software last.
fn type_rank(t: wgpu::DeviceType) -> u8 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    }
}

/// The process-wide wgpu instance: Vulkan, Metal and DX12 (GL lacks what the kernels need);
/// `WGPU_BACKEND` narrows it as wgpu documents.
pub(crate) fn instance() -> &'static wgpu::Instance {
    static INSTANCE: OnceLock<wgpu::Instance> = OnceLock::new();
    INSTANCE.get_or_init(|| {
        let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
        desc.backends = wgpu::Backends::PRIMARY.with_env();
        wgpu::Instance::new(desc)
    })
}

fn adapters() -> Vec<wgpu::Adapter> {
    let backends = wgpu::Backends::PRIMARY.with_env();
    pollster::block_on(instance().enumerate_adapters(backends))
}

pub(crate) fn summarize(index: usize, a: &wgpu::Adapter) -> AdapterSummary {
    let info = a.get_info();
    let limits = a.limits();
    AdapterSummary {
        index,
        name: info.name,
        backend: format!("{:?}", info.backend),
        device_type: info.device_type,
        driver: format!("{} {}", info.driver, info.driver_info)
            .trim()
            .to_string(),
        shader_f16: a.features().contains(wgpu::Features::SHADER_F16),
        max_storage_buffer_binding_size: limits.max_storage_buffer_binding_size,
        max_buffer_size: limits.max_buffer_size,
        max_compute_invocations_per_workgroup: limits.max_compute_invocations_per_workgroup,
        max_compute_workgroups_per_dimension: limits.max_compute_workgroups_per_dimension,
        subgroup_sizes: (info.subgroup_min_size, info.subgroup_max_size),
    }
}

impl Device {
    /// The CPU backend.
    pub fn cpu() -> Device {
        Device::Cpu
    }

    /// Every adapter wgpu can see, in enumeration order (the index used by `gpu_by_index`).
    pub fn list() -> Vec<AdapterSummary> {
        adapters()
            .iter()
            .enumerate()
            .map(|(i, a)| summarize(i, a))
            .collect()
    }

    /// The best GPU adapter, software ones included (they rank last).
    pub fn gpu() -> Result<Device> {
        let list = Device::list();
        let best = list
            .iter()
            .min_by_key(|s| (type_rank(s.device_type), s.index))
            .ok_or_else(|| Error::NoAdapter(INSTALL_HINT.to_string()))?;
        Device::gpu_by_index(best.index)
    }

    /// The adapter at `index` in [`Device::list`].
    pub fn gpu_by_index(index: usize) -> Result<Device> {
        let mut all = adapters();
        if all.is_empty() {
            return Err(Error::DeviceSpec {
                spec: format!("gpu:{index}"),
                msg: format!("no GPU adapter available: {INSTALL_HINT}"),
            });
        }
        if index >= all.len() {
            return Err(Error::DeviceSpec {
                spec: format!("gpu:{index}"),
                msg: format!(
                    "there are {} adapters (gpu:0..gpu:{})",
                    all.len(),
                    all.len() - 1
                ),
            });
        }
        let adapter = all.swap_remove(index);
        Ok(Device::Gpu(Arc::new(GpuContext::new(adapter, index)?)))
    }

    /// A hardware GPU if there is one, else the CPU backend; `WGNN_DEVICE` overrides.
    /// Falling back to the CPU is reported once on stderr.
    pub fn auto() -> Result<Device> {
        if let Ok(spec) = std::env::var("WGNN_DEVICE") {
            let spec = spec.trim();
            if !spec.is_empty() && spec != "auto" {
                return Device::from_spec(spec);
            }
        }
        Device::auto_pick()
    }

    fn auto_pick() -> Result<Device> {
        let list = Device::list();
        let best = list
            .iter()
            .filter(|s| s.is_hardware())
            .min_by_key(|s| (type_rank(s.device_type), s.index));
        if let Some(best) = best {
            return Device::gpu_by_index(best.index);
        }
        static SAID: Once = Once::new();
        SAID.call_once(|| {
            let software: Vec<String> = list.iter().map(|s| format!("gpu:{} {}", s.index, s.name)).collect();
            if software.is_empty() {
                eprintln!("wgnn: no GPU adapter found; using the CPU backend (for a GPU: {INSTALL_HINT})");
            } else {
                eprintln!(
                    "wgnn: no hardware GPU found; using the CPU backend (software adapters, slower than it: {}; \
                     ask for one with --device gpu or WGNN_DEVICE=gpu)",
                    software.join(", ")
                );
            }
        });
        Ok(Device::Cpu)
    }

    /// Parses `cpu`, `gpu`, `gpu:N` or `auto` (as taken by `--device` and `WGNN_DEVICE`).
    pub fn from_spec(spec: &str) -> Result<Device> {
        let s = spec.trim().to_ascii_lowercase();
        match s.as_str() {
            "cpu" => Ok(Device::Cpu),
            "gpu" => Device::gpu(),
            "auto" => Device::auto_pick(),
            _ => {
                if let Some(n) = s.strip_prefix("gpu:") {
                    let index = n.parse::<usize>().map_err(|_| Error::DeviceSpec {
                        spec: spec.to_string(),
                        msg: "expected gpu:N with N a number".into(),
                    })?;
                    Device::gpu_by_index(index)
                } else {
                    Err(Error::DeviceSpec {
                        spec: spec.to_string(),
                        msg: "expected one of cpu, gpu, gpu:N, auto".into(),
                    })
                }
            }
        }
    }

    /// True for a wgpu device.
    pub fn is_gpu(&self) -> bool {
        matches!(self, Device::Gpu(_))
    }

    /// The GPU context, if this is a GPU device.
    pub fn gpu_context(&self) -> Option<&Arc<GpuContext>> {
        match self {
            Device::Gpu(ctx) => Some(ctx),
            Device::Cpu => None,
        }
    }

    /// Submits the pending GPU work (no-op on CPU). Does not wait.
    pub fn flush(&self) -> Result<()> {
        match self {
            Device::Cpu => Ok(()),
            Device::Gpu(ctx) => ctx.flush(),
        }
    }

    /// Submits pending GPU work and waits for it to finish (no-op on CPU).
    pub fn sync(&self) -> Result<()> {
        match self {
            Device::Cpu => Ok(()),
            Device::Gpu(ctx) => ctx.sync(),
        }
    }

    /// Submit/dispatch/transfer/memory counters (all zero on CPU).
    pub fn counters(&self) -> Counters {
        match self {
            Device::Cpu => Counters::default(),
            Device::Gpu(ctx) => ctx.counters(),
        }
    }

    /// True when both are the CPU or both are the same GPU context.
    pub fn same(&self, other: &Device) -> bool {
        match (self, other) {
            (Device::Cpu, Device::Cpu) => true,
            (Device::Gpu(a), Device::Gpu(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => write!(f, "cpu (ndarray)"),
            Device::Gpu(ctx) => {
                let s = ctx.summary();
                write!(
                    f,
                    "gpu:{} {} ({}, {:?})",
                    s.index, s.name, s.backend, s.device_type
                )
            }
        }
    }
}

impl fmt::Debug for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}
