//! The GEMM's configurations: which kernel (`MatmulKernel`) and tile shape a product runs
//! with, the context's settings that force them, the convolution path, and autotune — every
//! [`GemmConfig::CANDIDATES`] timed once per shape class ([`TuneKey`]) on the real operands.
//! The dispatch itself is `gemm.rs`.

use super::gemm::{Gemm, GemmOut, Mode};
use crate::error::Result;
use crate::gpu::context::GpuContext;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// Which matmul kernel a context uses (see `shaders/matmul.wgsl`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum MatmulKernel {
    /// Register-blocked, no workgroup memory: fastest on CPU-like adapters (lavapipe, ~4×
    /// the tiled kernel there), because barriers are expensive and caches do the reuse.
    RegisterBlocked = 0,
    /// Workgroup-memory tiles (16×256, 32×128 or 64×64 by the shape), 4×4 per thread: the
    /// choice for real GPUs.
    Tiled = 1,
}

impl MatmulKernel {
    /// The default for an adapter type: register-blocked on software (Cpu) adapters,
    /// tiled everywhere else.
    pub fn default_for(t: wgpu::DeviceType) -> MatmulKernel {
        if t == wgpu::DeviceType::Cpu {
            MatmulKernel::RegisterBlocked
        } else {
            MatmulKernel::Tiled
        }
    }

    /// `WGNN_MATMUL=rb|tiled` overrides the default.
    pub fn from_env() -> Option<MatmulKernel> {
        match std::env::var("WGNN_MATMUL").ok()?.as_str() {
            "rb" | "register-blocked" => Some(MatmulKernel::RegisterBlocked),
            "tiled" => Some(MatmulKernel::Tiled),
            _ => None,
        }
    }
}

/// How a GPU runs convolutions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum ConvPath {
    /// Implicit GEMM: one dispatch forward (bias and layout fused), two for the weight and
    /// bias gradients, one for the input gradient; no column matrix.
    Implicit = 0,
    /// The book's formulation: im2col, matmul, bias add and layout change (4 dispatches
    /// forward), columns rebuilt and col2im in the backward. The reference in tests.
    Im2col = 1,
}

impl ConvPath {
    /// `WGNN_GPU_CONV=implicit|im2col` overrides the default (implicit).
    pub fn from_env() -> Option<ConvPath> {
        match std::env::var("WGNN_GPU_CONV").ok()?.as_str() {
            "implicit" => Some(ConvPath::Implicit),
            "im2col" => Some(ConvPath::Im2col),
            _ => None,
        }
    }
}

/// One GEMM configuration: the kernel and, for the tiled kernel, its rows per workgroup
/// (`None`: chosen from M — 16, 32 or 64, the smallest that covers it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GemmConfig {
    /// The kernel.
    pub kernel: MatmulKernel,
    /// The tiled kernel's rows per workgroup.
    pub tile_rows: Option<u32>,
}

impl GemmConfig {
    /// What autotune measures: the register-blocked kernel (16-byte loads where the shape
    /// allows) and the three tiled shapes.
    pub const CANDIDATES: [GemmConfig; 4] = [
        GemmConfig {
            kernel: MatmulKernel::RegisterBlocked,
            tile_rows: None,
        },
        GemmConfig {
            kernel: MatmulKernel::Tiled,
            tile_rows: Some(16),
        },
        GemmConfig {
            kernel: MatmulKernel::Tiled,
            tile_rows: Some(32),
        },
        GemmConfig {
            kernel: MatmulKernel::Tiled,
            tile_rows: Some(64),
        },
    ];
}

impl std::fmt::Display for GemmConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.kernel, self.tile_rows) {
            (MatmulKernel::RegisterBlocked, _) => write!(f, "register-blocked"),
            (MatmulKernel::Tiled, Some(r)) => write!(f, "tiled {r}x{}", 4 * 256 / (r / 4)),
            (MatmulKernel::Tiled, None) => write!(f, "tiled (rows from M)"),
        }
    }
}

/// The shape class autotune measures once: the mode, transposes, epilogue loads, whether
/// 16-byte loads apply, and M, N, K rounded up to powers of two.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct TuneKey {
    mode: Mode,
    trans: (bool, bool),
    mask: bool,
    vec4: bool,
    mnk: [u32; 3],
}

impl TuneKey {
    fn of(g: &Gemm) -> TuneKey {
        TuneKey {
            mode: g.mode,
            trans: (g.trans_a, g.trans_b),
            mask: g.mask.is_some(),
            vec4: g.vec4_loads(),
            mnk: [g.p.m, g.p.n, g.p.k].map(|v| v.max(1).next_power_of_two()),
        }
    }
}

impl std::fmt::Display for TuneKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mode = match self.mode {
            Mode::Matmul => "matmul",
            Mode::ConvForward => "conv forward",
            Mode::ConvInputGrad => "conv input gradient",
            Mode::ConvWeightGrad => "conv weight gradient",
        };
        let [m, n, k] = self.mnk;
        write!(f, "{mode} M≤{m} N≤{n} K≤{k}")?;
        if self.trans.0 || self.trans.1 {
            write!(
                f,
                " (transposed {}{})",
                if self.trans.0 { "A" } else { "" },
                if self.trans.1 { "B" } else { "" }
            )?;
        }
        Ok(())
    }
}

impl GpuContext {
    /// Whether GEMMs (matmul and implicit-GEMM convolutions) are autotuned: on first use of
    /// a shape class every [`GemmConfig::CANDIDATES`] is timed on the real operands and the
    /// fastest kept for the context's lifetime. Off by default (like PyTorch's
    /// `cudnn.benchmark`: the first step of each shape then submits and waits, and the choice
    /// can differ between runs, so results may differ in the last bits); `WGNN_AUTOTUNE=1`
    /// turns it on. `WGNN_MATMUL` or [`GpuContext::set_tile_rows`] still force a kernel.
    /// Without it the fallback table applies: register-blocked on CPU-like adapters, tiled
    /// with 16, 32 or 64 rows per workgroup (the smallest covering M) elsewhere.
    pub fn autotune(&self) -> bool {
        self.autotune.load(Ordering::Relaxed)
    }

    /// Turns GEMM autotune on or off (see [`GpuContext::autotune`]).
    pub fn set_autotune(&self, on: bool) {
        self.autotune.store(on, Ordering::Relaxed);
    }

    /// What autotune chose so far: (shape class, configuration, its median time in ms).
    pub fn tuned_gemms(&self) -> Vec<(String, GemmConfig, f64)> {
        let mut v: Vec<_> = self
            .tuned_gemms_map()
            .iter()
            .map(|(k, &(c, ms))| (k.to_string(), c, ms))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// The matmul kernel in use.
    pub fn matmul_kernel(&self) -> MatmulKernel {
        if self.matmul_kernel.load(Ordering::Relaxed) == MatmulKernel::Tiled as u8 {
            MatmulKernel::Tiled
        } else {
            MatmulKernel::RegisterBlocked
        }
    }

    /// Chooses the matmul kernel (tests cross-check both on every adapter).
    pub fn set_matmul_kernel(&self, k: MatmulKernel) {
        self.matmul_kernel.store(k as u8, Ordering::Relaxed);
    }

    /// The convolution path in use.
    pub fn conv_path(&self) -> ConvPath {
        if self.conv_path.load(Ordering::Relaxed) == ConvPath::Im2col as u8 {
            ConvPath::Im2col
        } else {
            ConvPath::Implicit
        }
    }

    /// Chooses the convolution path (tests compare both).
    pub fn set_conv_path(&self, p: ConvPath) {
        self.conv_path.store(p as u8, Ordering::Relaxed);
    }

    /// Whether a fused conv + ReLU backward applies the ReLU mask inside the gradient GEMMs
    /// (each dout load also reads the output: no extra pass, the choice for GPUs) or in one
    /// elementwise pass before them (CPU-like adapters, where every extra gathered load costs
    /// more than the pass; measured 1.3x faster per DeepConvNet step on lavapipe).
    pub fn relu_mask_in_gemm(&self) -> bool {
        self.relu_mask_in_gemm.load(Ordering::Relaxed)
    }

    /// Chooses where the ReLU mask of a fused conv + ReLU backward is applied (tests check
    /// both).
    pub fn set_relu_mask_in_gemm(&self, in_gemm: bool) {
        self.relu_mask_in_gemm.store(in_gemm, Ordering::Relaxed);
    }

    /// Rows per workgroup of the tiled kernel: `Some(16 | 32 | 64)` forces one shape (tests
    /// run every shape over the same problems), `None` chooses from M.
    pub fn set_tile_rows(&self, rows: Option<u32>) {
        self.tile_rows.store(rows.unwrap_or(0), Ordering::Relaxed);
    }

    /// The tiled kernel's rows per workgroup for an M-row product: the smallest of 16, 32, 64
    /// that covers M (skinny tiles for the conv GEMMs, whose M is the filter count).
    pub(super) fn tile_rows_for(&self, m: usize) -> u32 {
        match self.tile_rows.load(Ordering::Relaxed) {
            r @ (16 | 32 | 64) => r,
            _ if m <= 16 => 16,
            _ if m <= 32 => 32,
            _ => 64,
        }
    }
}

impl GpuContext {
    /// The configuration for `g`: the settings' (kernel, tile rows from M — the fallback
    /// table), unless autotune is on and nothing is forced: then the measured fastest for
    /// g's shape class, measured now on first use.
    pub(super) fn gemm_config(self: &Arc<Self>, g: &Gemm, out: &GemmOut) -> Result<GemmConfig> {
        let fallback = GemmConfig {
            kernel: self.matmul_kernel(),
            tile_rows: None,
        };
        if !self.autotune()
            || MatmulKernel::from_env().is_some()
            || self.tile_rows.load(Ordering::Relaxed) != 0
        {
            return Ok(fallback);
        }
        let key = TuneKey::of(g);
        if let Some(&c) = self.tuned_gemms_map().get(&key) {
            return Ok(c.0);
        }
        let (best, ms) = self.tune(g, out)?;
        self.tuned_gemms_map().insert(key, (best, ms));
        Ok(best)
    }

    /// Times every candidate configuration on `g`'s operands, writing to scratch outputs
    /// (each candidate once to build its pipeline, then the median of three runs, each
    /// submitted and waited for); returns the fastest and its time in ms. Work recorded
    /// before is submitted first.
    fn tune(self: &Arc<Self>, g: &Gemm, out: &GemmOut) -> Result<(GemmConfig, f64)> {
        const WHAT: &str = "autotune scratch";
        let mut scratch = match out {
            GemmOut::C(c) => (self.alloc_buffer(c.numel, c.dtype, WHAT)?, None),
            GemmOut::WeightGrad { dw, db } => (
                self.alloc_buffer(dw.numel, dw.dtype, WHAT)?,
                Some(self.alloc_buffer(db.numel, db.dtype, WHAT)?),
            ),
        };
        let mut best = (GemmConfig::CANDIDATES[0], f64::INFINITY);
        self.sync()?;
        for cfg in GemmConfig::CANDIDATES {
            let mut times = Vec::with_capacity(3);
            for rep in 0..4 {
                let t = std::time::Instant::now();
                let target = match &mut scratch {
                    (c, None) => GemmOut::C(c),
                    (dw, Some(db)) => GemmOut::WeightGrad { dw, db },
                };
                self.gemm_with(*g, target, cfg)?;
                self.sync()?;
                if rep > 0 {
                    times.push(t.elapsed().as_secs_f64() * 1e3);
                }
            }
            times.sort_by(f64::total_cmp);
            if times[1] < best.1 {
                best = (cfg, times[1]);
            }
        }
        Ok(best)
    }
}
