//! WGSL sources and the lazy pipeline cache.
//!
//! Each op family is one file in `shaders/`, written once against a scalar alias `T`; the
//! cache prepends `alias T = f32;` (or `enable f16; alias T = f16;`) to instantiate it per
//! dtype. Pipelines are built on first use and cached by (shader, entry, dtype, override
//! constants); override constants carry compile-time switches such as matmul transposes.

use super::kernels::KernelDef;
use crate::dtype::DType;
use crate::error::{Error, Result};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::Mutex;

/// The kernel families, one WGSL file each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Shader {
    /// `shaders/matmul.wgsl`
    Matmul,
    /// `shaders/elementwise.wgsl`
    Elementwise,
    /// `shaders/reduce.wgsl`
    Reduce,
    /// `shaders/softmax.wgsl`
    Softmax,
    /// `shaders/im2col.wgsl`
    Im2col,
    /// `shaders/pool.wgsl`
    Pool,
    /// `shaders/layout.wgsl`
    Layout,
    /// `shaders/optim.wgsl`
    Optim,
    /// `shaders/data.wgsl`
    Data,
    /// `shaders/cast.wgsl` (f16 adapters only)
    Cast,
    /// `shaders/scaler.wgsl`
    Scaler,
    /// `shaders/peak.wgsl` (benchmark microkernels)
    Peak,
    /// `shaders/norm.wgsl`
    Norm,
    /// `shaders/augment.wgsl`
    Augment,
    /// `shaders/reduce.wgsl` followed by `shaders/reduce_subgroup.wgsl` (adapters with
    /// `Features::SUBGROUP` only)
    ReduceSubgroup,
    /// `shaders/pointwise.wgsl` followed by the `fn pw` generated from the table in
    /// `src/ops/pointwise.rs`
    Pointwise,
    /// `shaders/index.wgsl`
    Index,
    /// `shaders/bmm.wgsl`
    Bmm,
    /// `shaders/rnn.wgsl`
    Rnn,
}

/// `shaders/pointwise.wgsl` with the op table's generated `fn pw` appended.
static POINTWISE_SOURCE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "{}{}",
        include_str!("../../shaders/pointwise.wgsl"),
        crate::ops::pointwise::wgsl_switch()
    )
});

impl Shader {
    /// Every family (used by tests that compile them all).
    pub const ALL: [Shader; 19] = [
        Shader::Matmul,
        Shader::Elementwise,
        Shader::Reduce,
        Shader::Softmax,
        Shader::Im2col,
        Shader::Pool,
        Shader::Layout,
        Shader::Optim,
        Shader::Data,
        Shader::Cast,
        Shader::Scaler,
        Shader::Peak,
        Shader::Norm,
        Shader::Augment,
        Shader::ReduceSubgroup,
        Shader::Pointwise,
        Shader::Index,
        Shader::Bmm,
        Shader::Rnn,
    ];

    /// The WGSL source (without the dtype prefix).
    pub fn source(self) -> &'static str {
        match self {
            Shader::Matmul => include_str!("../../shaders/matmul.wgsl"),
            Shader::Elementwise => include_str!("../../shaders/elementwise.wgsl"),
            Shader::Reduce => include_str!("../../shaders/reduce.wgsl"),
            Shader::Softmax => include_str!("../../shaders/softmax.wgsl"),
            Shader::Im2col => include_str!("../../shaders/im2col.wgsl"),
            Shader::Pool => include_str!("../../shaders/pool.wgsl"),
            Shader::Layout => include_str!("../../shaders/layout.wgsl"),
            Shader::Optim => include_str!("../../shaders/optim.wgsl"),
            Shader::Data => include_str!("../../shaders/data.wgsl"),
            Shader::Cast => include_str!("../../shaders/cast.wgsl"),
            Shader::Scaler => include_str!("../../shaders/scaler.wgsl"),
            Shader::Peak => include_str!("../../shaders/peak.wgsl"),
            Shader::Norm => include_str!("../../shaders/norm.wgsl"),
            Shader::Augment => include_str!("../../shaders/augment.wgsl"),
            Shader::ReduceSubgroup => concat!(
                include_str!("../../shaders/reduce.wgsl"),
                include_str!("../../shaders/reduce_subgroup.wgsl")
            ),
            Shader::Pointwise => POINTWISE_SOURCE.as_str(),
            Shader::Index => include_str!("../../shaders/index.wgsl"),
            Shader::Bmm => include_str!("../../shaders/bmm.wgsl"),
            Shader::Rnn => include_str!("../../shaders/rnn.wgsl"),
        }
    }

    /// File name, for labels and error messages.
    pub fn file(self) -> &'static str {
        match self {
            Shader::Matmul => "matmul.wgsl",
            Shader::Elementwise => "elementwise.wgsl",
            Shader::Reduce => "reduce.wgsl",
            Shader::Softmax => "softmax.wgsl",
            Shader::Im2col => "im2col.wgsl",
            Shader::Pool => "pool.wgsl",
            Shader::Layout => "layout.wgsl",
            Shader::Optim => "optim.wgsl",
            Shader::Data => "data.wgsl",
            Shader::Cast => "cast.wgsl",
            Shader::Scaler => "scaler.wgsl",
            Shader::Peak => "peak.wgsl",
            Shader::Norm => "norm.wgsl",
            Shader::Augment => "augment.wgsl",
            Shader::ReduceSubgroup => "reduce_subgroup.wgsl",
            Shader::Pointwise => "pointwise.wgsl",
            Shader::Index => "index.wgsl",
            Shader::Bmm => "bmm.wgsl",
            Shader::Rnn => "rnn.wgsl",
        }
    }
}

/// The full source of `shader` instantiated for `dtype`.
pub(crate) fn instantiate(shader: Shader, dtype: DType) -> String {
    let prefix = match dtype {
        DType::F16 => "enable f16;\nalias T = f16;\n",
        DType::F32 | DType::U32 => "alias T = f32;\n",
    };
    format!("{prefix}{}", shader.source())
}

/// Override constants one kernel key can carry.
const MAX_CONSTANTS: usize = 12;

/// What identifies a compiled pipeline. Plain data (no allocation), so that looking a
/// pipeline up on every dispatch costs a hash and nothing else.
#[derive(Clone, Copy, Debug)]
pub(crate) struct KernelKey {
    /// The kernel: an entry of the table in `kernels.rs`.
    pub kernel: &'static KernelDef,
    pub dtype: DType,
    constants: [(&'static str, u32); MAX_CONSTANTS],
    len: usize,
}

impl Hash for KernelKey {
    /// The kernel by address (a `static` of the table has one) and the constants by value.
    fn hash<H: Hasher>(&self, h: &mut H) {
        h.write_usize(std::ptr::from_ref(self.kernel) as usize);
        h.write_u64(self.dtype as u64);
        for &(_, v) in self.constants() {
            h.write_u32(v);
        }
    }
}

impl PartialEq for KernelKey {
    /// The kernel compares by address, as it hashes (each is one `static`); constant names
    /// by address too (`'static` literals: two copies of one name at different addresses make
    /// two keys for one kernel — a second compile, never a wrong pipeline).
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self.kernel, other.kernel)
            && self.dtype == other.dtype
            && self.len == other.len
            && self
                .constants()
                .iter()
                .zip(other.constants())
                .all(|(a, b)| a.1 == b.1 && std::ptr::eq(a.0, b.0))
    }
}

impl Eq for KernelKey {}

/// A fast hasher for the per-dispatch caches (pipelines, bind groups), whose keys are a few
/// integers: multiply-rotate (FxHash's scheme) instead of SipHash's DoS resistance, which
/// keys made by the program itself do not need.
#[derive(Default, Clone, Copy)]
pub(crate) struct FastHasher(u64);

impl Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(b));
        }
    }

    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn write_u32(&mut self, i: u32) {
        self.write_u64(i as u64);
    }

    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// `HashMap` with [`FastHasher`].
pub(crate) type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;

impl KernelKey {
    /// The key of `kernel` (f32, no override constants).
    pub(crate) fn new(kernel: &'static KernelDef) -> Self {
        KernelKey {
            kernel,
            dtype: DType::F32,
            constants: [("", 0); MAX_CONSTANTS],
            len: 0,
        }
    }

    /// Instantiates the kernel for `dtype` (u32 data uses the f32 instance: `T` is unused).
    pub(crate) fn dtype(mut self, dtype: DType) -> Self {
        self.dtype = if dtype == DType::F16 {
            DType::F16
        } else {
            DType::F32
        };
        self
    }

    /// Sets override constant `name` (at most [`MAX_CONSTANTS`] per key: a fixed property of
    /// the kernels, checked by every test that builds them).
    pub(crate) fn constant(mut self, name: &'static str, value: u32) -> Self {
        assert!(
            self.len < MAX_CONSTANTS,
            "more than {MAX_CONSTANTS} override constants"
        );
        self.constants[self.len] = (name, value);
        self.len += 1;
        self
    }

    /// The same constants for another kernel of the same shader.
    pub(crate) fn for_kernel(mut self, kernel: &'static KernelDef) -> Self {
        debug_assert_eq!(kernel.shader, self.kernel.shader);
        self.kernel = kernel;
        self
    }

    /// The key's shader family.
    pub(crate) fn shader(&self) -> Shader {
        self.kernel.shader
    }

    /// The key's entry point.
    pub(crate) fn entry(&self) -> &'static str {
        self.kernel.entry
    }

    /// The override constants set.
    pub(crate) fn constants(&self) -> &[(&'static str, u32)] {
        &self.constants[..self.len]
    }
}

/// A compiled pipeline and its bind group layout (fetched once, not per dispatch).
#[derive(Clone)]
pub(crate) struct Kernel {
    pub pipeline: wgpu::ComputePipeline,
    pub layout: wgpu::BindGroupLayout,
}

#[derive(Default)]
pub(crate) struct PipelineCache {
    modules: Mutex<HashMap<(Shader, DType), wgpu::ShaderModule>>,
    pipelines: Mutex<FastMap<KernelKey, Kernel>>,
}

impl PipelineCache {
    /// The pipeline for `key`, compiling it (and its module) on first use. Compile and
    /// validation failures come back as [`Error::Gpu`] naming the shader and entry point.
    pub(crate) fn get(
        &self,
        device: &wgpu::Device,
        adapter: &str,
        key: &KernelKey,
    ) -> Result<Kernel> {
        if let Some(p) = self
            .pipelines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
        {
            return Ok(p.clone());
        }
        let fail = |what: &str, e: wgpu::Error| Error::Gpu {
            adapter: adapter.to_string(),
            msg: format!(
                "{what} {}::{} ({}): {e}",
                key.shader().file(),
                key.entry(),
                key.dtype
            ),
        };
        let module = {
            let mut modules = self.modules.lock().unwrap_or_else(|e| e.into_inner());
            match modules.get(&(key.shader(), key.dtype)) {
                Some(m) => m.clone(),
                None => {
                    let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
                    let source = instantiate(key.shader(), key.dtype);
                    let desc = wgpu::ShaderModuleDescriptor {
                        label: Some(key.shader().file()),
                        source: wgpu::ShaderSource::Wgsl(source.into()),
                    };
                    // Every check wgpu adds stays on (buffer and array bounds, integer
                    // division by zero) except the loop bound it wraps around every loop
                    // so that a driver cannot assume a loop terminates: that counter keeps
                    // LLVM (lavapipe) and driver compilers from unrolling and pipelining
                    // the GEMM's k loops — conv GEMMs ran 1.6–1.8× slower with it on
                    // lavapipe. SAFETY: every loop in wgnn's shaders runs over a count
                    // taken from its uniform parameters or a constant, so none is infinite.
                    let mut checks = wgpu::ShaderRuntimeChecks::checked();
                    checks.force_loop_bounding = false;
                    let m = unsafe { device.create_shader_module_trusted(desc, checks) };
                    if let Some(e) = pollster::block_on(scope.pop()) {
                        return Err(fail("compiling", e));
                    }
                    modules.insert((key.shader(), key.dtype), m.clone());
                    m
                }
            }
        };
        let constants: Vec<(&str, f64)> = key
            .constants()
            .iter()
            .map(|&(n, v)| (n, v as f64))
            .collect();
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(key.entry()),
            layout: None,
            module: &module,
            entry_point: Some(key.entry()),
            compilation_options: wgpu::PipelineCompilationOptions {
                constants: &constants,
                zero_initialize_workgroup_memory: false,
            },
            cache: None,
        });
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(fail("building pipeline", e));
        }
        let kernel = Kernel {
            layout: pipeline.get_bind_group_layout(0),
            pipeline,
        };
        // Two threads may have built the same kernel at once: the first one stored wins and
        // both use it, so a key always means one pipeline (bind groups are cached by key, and
        // a derived layout only fits its own pipeline).
        Ok(self
            .pipelines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(*key)
            .or_insert(kernel)
            .clone())
    }

    /// Number of pipelines built so far.
    pub(crate) fn len(&self) -> usize {
        self.pipelines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }
}
