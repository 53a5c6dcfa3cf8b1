//! The GEMM family (`shaders/matmul.wgsl`): matrix products and convolutions as implicit GEMM.
//!
//! One WGSL GEMM core serves four modes (plain matmul, conv forward, conv input gradient, conv
//! weight + bias gradient); each mode's operand loaders read the NCHW tensors through the
//! convolution's index map, so no column matrix exists. The explicit im2col formulation stays
//! as the reference path ([`ConvPath::Im2col`], `WGNN_GPU_CONV=im2col`) that tests compare with.
//!
//! Work splitting is chosen per adapter: on CPU-like adapters (lavapipe) K is split only past
//! [`SPLIT_K`] (few cores, and an invocation may loop at most 65,535 times there); on GPUs the
//! split aims at [`GPU_TARGET_GROUPS`] workgroups so a small output still fills the device.

use super::super::buffers::GpuBuffer;
use super::super::context::GpuContext;
use super::super::pipelines::{KernelKey, Shader};
use super::u32_of;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::ops::{Backend, Conv2dGeom, MatmulSpec, Pw};
use bytemuck::{Pod, Zeroable};
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
    fn tile_rows_for(&self, m: usize) -> u32 {
        match self.tile_rows.load(Ordering::Relaxed) {
            r @ (16 | 32 | 64) => r,
            _ if m <= 16 => 16,
            _ if m <= 32 => 32,
            _ => 64,
        }
    }
}

/// The uniform block of matmul.wgsl (`struct Params`).
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Default)]
pub(super) struct MatmulParams {
    m: u32,
    n: u32,
    k: u32,
    alpha: f32,
    beta: f32,
    /// K per split (= k when not split).
    k_chunk: u32,
    splits: u32,
    _p0: u32,
    c: u32,
    h: u32,
    w: u32,
    f: u32,
    kh: u32,
    kw: u32,
    stride: u32,
    pad: u32,
    oh: u32,
    ow: u32,
    _p1: u32,
    _p2: u32,
}

// The WGSL struct is 20 four-byte fields; a field added on one side only fails here.
const _: () = assert!(std::mem::size_of::<MatmulParams>() == 80);

/// The K range one split-K workgroup covers on CPU-like adapters; larger K is split into
/// chunks summed in f32 (no invocation may loop long: lavapipe cuts loops at 65,535).
pub(super) const SPLIT_K: usize = 8192;

/// Threads with outputs a split-K GEMM aims at on a CPU-like adapter.
const CPU_MIN_THREADS: usize = 256;

/// The shortest K chunk worth a split on a CPU-like adapter.
const CPU_MIN_CHUNK: usize = 512;

/// Workgroups a split-K GEMM aims at on a GPU (a few per compute unit of a large GPU).
const GPU_TARGET_GROUPS: usize = 1024;

/// The shortest K chunk worth a split on a GPU.
const GPU_MIN_CHUNK: usize = 256;

/// What one GEMM dispatch computes (see the MODE table in matmul.wgsl).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Mode {
    Matmul = 0,
    ConvForward = 1,
    ConvInputGrad = 2,
    ConvWeightGrad = 3,
}

/// One GEMM: sizes, mode, fused epilogue and operands.
#[derive(Clone, Copy)]
struct Gemm<'a> {
    mode: Mode,
    p: MatmulParams,
    trans_a: bool,
    trans_b: bool,
    relu: bool,
    a: &'a GpuBuffer,
    b: &'a GpuBuffer,
    bias: Option<&'a GpuBuffer>,
    /// The ReLU output whose mask multiplies dout (modes 2 and 3).
    mask: Option<&'a GpuBuffer>,
}

/// Rows and columns per thread of the register-blocked kernel for an M×N product: up to 16
/// rows and 4 columns (strided by 64), fewer when M or N is small, so that no thread computes
/// clamped duplicates. 16 rows beat 8 by 2–15 % on lavapipe's conv GEMMs (each gathered B
/// value feeds twice the FMAs; `backend_compare --gpu-timestamps`, three alternating pairs).
fn rb_shape(m: usize, n: usize) -> (usize, usize) {
    (m.next_power_of_two().min(16), n.div_ceil(64).clamp(1, 4))
}

impl Gemm<'_> {
    /// Whether the register-blocked kernel can load 16 bytes at a time (`matmul_rb4`): a
    /// plain matmul whose contiguous axes are multiples of 4 elements.
    fn vec4_loads(&self) -> bool {
        let (m, n, k) = (self.p.m, self.p.n, self.p.k);
        self.mode == Mode::Matmul
            && k.is_multiple_of(4)
            && (!self.trans_a || m.is_multiple_of(4))
            && (self.trans_b || n.is_multiple_of(4))
    }
}

impl GpuContext {
    /// The split count for an M×N×K product with `tiles` output workgroups of which
    /// `threads` threads have outputs.
    fn splits_for(&self, m: usize, n: usize, k: usize, tiles: usize, threads: usize) -> usize {
        let cpu_like = self.summary().device_type == wgpu::DeviceType::Cpu;
        let wanted = if cpu_like {
            // Chunks of SPLIT_K, or more splits (of at least CPU_MIN_CHUNK) when too few
            // threads have outputs to keep the SIMD lanes of every core busy.
            k.div_ceil(SPLIT_K).max(
                CPU_MIN_THREADS
                    .div_ceil(threads.max(1))
                    .min(k / CPU_MIN_CHUNK),
            )
        } else {
            GPU_TARGET_GROUPS
                .div_ceil(tiles.max(1))
                .min(k / GPU_MIN_CHUNK)
                .max(1)
        };
        // Every split's chunk stays under lavapipe's loop limit, and the f32 partials fit
        // one binding and one dispatch dimension.
        let floor = k.div_ceil(60_000);
        let per_split = (m * n * 4).max(1) as u64;
        let fit = (self.max_binding / per_split).min(self.max_groups as u64) as usize;
        wanted.max(floor).min(fit).max(1)
    }

    /// Workgroup grid `[x, y]`, entry names and override constants of a GEMM of this shape.
    /// The last element is the number of threads that have outputs.
    fn gemm_plan(&self, g: &Gemm, cfg: GemmConfig) -> ([usize; 2], &'static str, KernelKey, usize) {
        let (m, n) = (g.p.m as usize, g.p.n as usize);
        let base = |entry: &'static str| {
            KernelKey::new(Shader::Matmul, entry)
                .constant("MODE", g.mode as u32)
                .constant("TRANS_A", g.trans_a as u32)
                .constant("TRANS_B", g.trans_b as u32)
                .constant("BIAS", g.bias.is_some() as u32)
                .constant("RELU", g.relu as u32)
                .constant("MASK", g.mask.is_some() as u32)
                .constant(
                    "UNIT_STRIDE",
                    (g.mode != Mode::Matmul && g.p.stride == 1) as u32,
                )
        };
        match cfg.kernel {
            MatmulKernel::RegisterBlocked if g.vec4_loads() => (
                // 64 threads sharing 4 rows (A's loads are uniform), 8 columns each.
                [n.div_ceil(512), m.div_ceil(8)],
                "matmul_rb4_part",
                base("matmul_rb4"),
                m.div_ceil(8) * n.div_ceil(8),
            ),
            MatmulKernel::RegisterBlocked => {
                // 64 threads sharing RB_M rows, RB_N columns each (strided by 64).
                let (rm, rn) = rb_shape(m, n);
                let key = base("matmul_rb")
                    .constant("RB_M", rm as u32)
                    .constant("RB_N", rn as u32);
                (
                    [n.div_ceil(64 * rn), m.div_ceil(rm)],
                    "matmul_rb_part",
                    key,
                    m.div_ceil(rm) * n.div_ceil(rn),
                )
            }
            MatmulKernel::Tiled => {
                let bm = cfg.tile_rows.unwrap_or_else(|| self.tile_rows_for(m));
                // 256 threads: BM / 4 rows of threads, so BN = 4 · 256 / (BM / 4).
                let bn = 4 * 256 / (bm as usize / 4);
                let key = base("matmul_tiled").constant("BM", bm);
                (
                    [n.div_ceil(bn), m.div_ceil(bm as usize)],
                    "matmul_tiled_part",
                    key,
                    m.div_ceil(4) * n.div_ceil(4),
                )
            }
        }
    }

    /// Records one GEMM into `out`, in the configuration the context's settings give (or,
    /// with autotune on, the fastest one measured for its shape class).
    fn gemm(self: &Arc<Self>, g: Gemm, out: GemmOut) -> Result<()> {
        let cfg = self.gemm_config(&g, &out)?;
        self.gemm_with(g, out, cfg)
    }

    /// The configuration for `g`: the settings' (kernel, tile rows from M — the fallback
    /// table), unless autotune is on and nothing is forced: then the measured fastest for
    /// g's shape class, measured now on first use.
    fn gemm_config(self: &Arc<Self>, g: &Gemm, out: &GemmOut) -> Result<GemmConfig> {
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

    /// Records one GEMM into `out` in configuration `cfg`.
    fn gemm_with(self: &Arc<Self>, g: Gemm, out: GemmOut, cfg: GemmConfig) -> Result<()> {
        const OP: &str = "matmul";
        let (m, n, k) = (g.p.m as usize, g.p.n as usize, g.p.k as usize);
        let ([gx, gy], part_entry, key, threads) = self.gemm_plan(&g, cfg);
        let weight_grad = g.mode == Mode::ConvWeightGrad;
        let splits = if weight_grad || k > SPLIT_K {
            self.splits_for(m, n, k, gx * gy, threads)
        } else {
            1
        };
        let bias = g.bias.unwrap_or(g.a);
        let mask = g.mask.unwrap_or(g.a);
        if let (1, GemmOut::C(c)) = (splits, &out) {
            let p = MatmulParams {
                k_chunk: g.p.k,
                splits: 1,
                ..g.p
            };
            let bindings: &[(u32, &GpuBuffer)] = if key.entry == "matmul_rb4" {
                &[(1, c), (8, g.a), (9, g.b), (5, bias)]
            } else {
                &[(1, c), (2, g.a), (3, g.b), (5, bias), (6, mask)]
            };
            return self.dispatch(
                &key,
                bytemuck::bytes_of(&p),
                bindings,
                [u32_of(OP, gx)?, u32_of(OP, gy)?, 1],
            );
        }
        let chunk = k.div_ceil(splits.max(1)).next_multiple_of(16);
        let splits = k.div_ceil(chunk).max(1);
        let p = MatmulParams {
            k_chunk: u32_of(OP, chunk)?,
            splits: u32_of(OP, splits)?,
            ..g.p
        };
        let part = self.alloc_buffer(splits * m * n, DType::F32, "split-K partials")?;
        let part_key = key.for_entry(part_entry);
        let bindings: &[(u32, &GpuBuffer)] = if part_entry == "matmul_rb4_part" {
            &[(4, &part), (8, g.a), (9, g.b)]
        } else {
            &[(4, &part), (2, g.a), (3, g.b), (6, mask)]
        };
        self.dispatch(
            &part_key,
            bytemuck::bytes_of(&p),
            bindings,
            [u32_of(OP, gx)?, u32_of(OP, gy)?, u32_of(OP, splits)?],
        )?;
        match out {
            GemmOut::C(c) => self.sum_partials(part, splits, m * n, c, g.p.alpha, g.p.beta),
            GemmOut::WeightGrad { dw, db } => self.dispatch(
                &KernelKey::new(Shader::Matmul, "conv_dw_final"),
                bytemuck::bytes_of(&p),
                &[(1, &*dw), (4, &part), (7, &*db)],
                self.grid(m * n, 256)?,
            ),
        }
    }
}

/// Where a GEMM's result goes.
enum GemmOut<'a> {
    /// The output matrix (or NCHW tensor).
    C(&'a mut GpuBuffer),
    /// Mode 3: the weight gradient `[F, C·KH·KW]` and the bias gradient `[F]`.
    WeightGrad {
        dw: &'a mut GpuBuffer,
        db: &'a mut GpuBuffer,
    },
}

fn conv_params(op: &'static str, g: &Conv2dGeom, fout: usize) -> Result<MatmulParams> {
    Ok(MatmulParams {
        alpha: 1.0,
        c: u32_of(op, g.c)?,
        h: u32_of(op, g.h)?,
        w: u32_of(op, g.w)?,
        f: u32_of(op, fout)?,
        kh: u32_of(op, g.kh)?,
        kw: u32_of(op, g.kw)?,
        stride: u32_of(op, g.stride)?,
        pad: u32_of(op, g.pad)?,
        oh: u32_of(op, g.out_h())?,
        ow: u32_of(op, g.out_w())?,
        ..Default::default()
    })
}

/// The fused epilogue of a GEMM: `+ bias` (per output column of a matmul, per filter of a
/// convolution), then ReLU.
#[derive(Clone, Copy, Default)]
pub(crate) struct Epilogue<'a> {
    pub bias: Option<&'a GpuBuffer>,
    pub relu: bool,
}

impl GpuContext {
    /// `C = alpha · op(A) · op(B) + beta · C`, then the epilogue.
    pub(super) fn gemm_matmul(
        self: &Arc<Self>,
        a: &GpuBuffer,
        b: &GpuBuffer,
        c: &mut GpuBuffer,
        s: &MatmulSpec,
        epi: Epilogue,
    ) -> Result<()> {
        const OP: &str = "matmul";
        for t in [b, &*c] {
            if t.dtype != a.dtype || !a.dtype.is_float() {
                return Err(Error::DTypeMismatch {
                    op: OP,
                    expected: a.dtype,
                    got: t.dtype,
                });
            }
        }
        if s.k == 0 {
            // An empty inner dimension: C = beta * C (+ bias, ReLU).
            let mn = s.m * s.n;
            if s.beta == 0.0 {
                self.fill(c, 0.0, mn)?;
            } else if s.beta != 1.0 {
                let mut tmp = self.alloc_buffer(mn, c.dtype, OP)?;
                self.pointwise_flat(Pw::Scale, s.beta, &[c], &mut tmp, mn)?;
                self.copy_into(&tmp, c)?;
            }
            if let Some(bias) = epi.bias {
                let mut tmp = self.alloc_buffer(mn, c.dtype, OP)?;
                self.pointwise_rows(Pw::Add, c, bias, &mut tmp, s.m, s.n)?;
                self.copy_into(&tmp, c)?;
            }
            if epi.relu {
                let mut tmp = self.alloc_buffer(mn, c.dtype, OP)?;
                self.pointwise_flat(Pw::Relu, 0.0, &[c], &mut tmp, mn)?;
                self.copy_into(&tmp, c)?;
            }
            return Ok(());
        }
        let k_split = s.k > SPLIT_K;
        if k_split && (epi.bias.is_some() || epi.relu) {
            // The epilogue runs on the summed splits: product first, then bias and ReLU.
            self.gemm_matmul(a, b, c, s, Epilogue::default())?;
            let plain = MatmulSpec {
                k: 0,
                beta: 1.0,
                ..*s
            };
            return self.gemm_matmul(a, b, c, &plain, epi);
        }
        let p = MatmulParams {
            m: u32_of(OP, s.m)?,
            n: u32_of(OP, s.n)?,
            k: u32_of(OP, s.k)?,
            alpha: s.alpha,
            beta: s.beta,
            ..Default::default()
        };
        self.gemm(
            Gemm {
                mode: Mode::Matmul,
                p,
                trans_a: s.trans_a,
                trans_b: s.trans_b,
                relu: epi.relu,
                a,
                b,
                bias: epi.bias,
                mask: None,
            },
            GemmOut::C(c),
        )
    }

    /// Convolution forward into NCHW `out`, bias (and ReLU) fused.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn conv_forward(
        self: &Arc<Self>,
        x: &GpuBuffer,
        w: &GpuBuffer,
        b: &GpuBuffer,
        out: &mut GpuBuffer,
        g: &Conv2dGeom,
        fout: usize,
        relu: bool,
    ) -> Result<()> {
        const OP: &str = "conv2d";
        if self.conv_path() == ConvPath::Im2col {
            self.conv_forward_im2col(x, w, b, out, g, fout)?;
            if relu {
                let n = g.n * fout * g.out_h() * g.out_w();
                let mut tmp = self.alloc_buffer(n, out.dtype, OP)?;
                self.pointwise_flat(Pw::Relu, 0.0, &[out], &mut tmp, n)?;
                self.copy_into(&tmp, out)?;
            }
            return Ok(());
        }
        let p = MatmulParams {
            m: u32_of(OP, fout)?,
            n: u32_of(OP, g.col_rows())?,
            k: u32_of(OP, g.col_cols())?,
            ..conv_params(OP, g, fout)?
        };
        self.gemm(
            Gemm {
                mode: Mode::ConvForward,
                p,
                trans_a: false,
                trans_b: false,
                relu,
                a: w,
                b: x,
                bias: Some(b),
                mask: None,
            },
            GemmOut::C(out),
        )
    }

    /// Convolution backward: `dw`, `db` and (when asked) `dx` from `dout`; with `relu_out`,
    /// dout is first multiplied by the mask `relu_out > 0` (a fused ReLU backward).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn conv_backward(
        self: &Arc<Self>,
        x: &GpuBuffer,
        w: &GpuBuffer,
        dout: &GpuBuffer,
        relu_out: Option<&GpuBuffer>,
        dx: Option<&mut GpuBuffer>,
        dw: &mut GpuBuffer,
        db: &mut GpuBuffer,
        g: &Conv2dGeom,
        fout: usize,
    ) -> Result<()> {
        const OP: &str = "conv2d_backward";
        if self.conv_path() == ConvPath::Im2col {
            let masked;
            let dout = match relu_out {
                Some(y) => {
                    let n = g.n * fout * g.out_h() * g.out_w();
                    let mut d = self.alloc_buffer(n, dout.dtype, OP)?;
                    self.pointwise_flat(Pw::ReluGrad, 0.0, &[dout, y, y], &mut d, n)?;
                    masked = d;
                    &masked
                }
                None => dout,
            };
            return self.conv_backward_im2col(x, w, dout, dx, dw, db, g, fout);
        }
        let premasked;
        let (dout, relu_out) = match relu_out {
            Some(y) if !self.relu_mask_in_gemm() => {
                let n = g.n * fout * g.out_h() * g.out_w();
                let mut d = self.alloc_buffer(n, dout.dtype, OP)?;
                self.pointwise_flat(Pw::ReluGrad, 0.0, &[dout, y, y], &mut d, n)?;
                premasked = d;
                (&premasked, None)
            }
            other => (dout, other),
        };
        let geo = conv_params(OP, g, fout)?;
        // dW and db: [F, C·KH·KW + 1] over K = N·OH·OW, always split.
        let p = MatmulParams {
            m: u32_of(OP, fout)?,
            n: u32_of(OP, g.col_cols() + 1)?,
            k: u32_of(OP, g.col_rows())?,
            ..geo
        };
        self.gemm(
            Gemm {
                mode: Mode::ConvWeightGrad,
                p,
                trans_a: false,
                trans_b: false,
                relu: false,
                a: dout,
                b: x,
                bias: None,
                mask: relu_out,
            },
            GemmOut::WeightGrad { dw, db },
        )?;
        let Some(dx) = dx else {
            return Ok(()); // nothing differentiates the input
        };
        // dx: [C, N·H·W] over K = F·KH·KW.
        let p = MatmulParams {
            m: u32_of(OP, g.c)?,
            n: u32_of(OP, g.n * g.h * g.w)?,
            k: u32_of(OP, fout * g.kh * g.kw)?,
            ..geo
        };
        self.gemm(
            Gemm {
                mode: Mode::ConvInputGrad,
                p,
                trans_a: false,
                trans_b: false,
                relu: false,
                a: w,
                b: dout,
                bias: None,
                mask: relu_out,
            },
            GemmOut::C(dx),
        )
    }

    /// The book's formulation: im2col → col · Wᵀ → + b → [N, OH·OW, F] to NCHW.
    #[allow(clippy::too_many_arguments)]
    fn conv_forward_im2col(
        self: &Arc<Self>,
        x: &GpuBuffer,
        w: &GpuBuffer,
        b: &GpuBuffer,
        out: &mut GpuBuffer,
        g: &Conv2dGeom,
        fout: usize,
    ) -> Result<()> {
        let (rows, ckk, ohw) = (g.col_rows(), g.col_cols(), g.out_h() * g.out_w());
        let mut col = self.alloc_buffer(rows * ckk, x.dtype, "conv2d columns")?;
        self.im2col(x, &mut col, g)?;
        let mut prod = self.alloc_buffer(rows * fout, x.dtype, "conv2d product")?;
        let spec = MatmulSpec {
            m: rows,
            n: fout,
            k: ckk,
            trans_a: false,
            trans_b: true,
            alpha: 1.0,
            beta: 0.0,
        };
        self.matmul(&col, w, &mut prod, &spec)?;
        let mut biased = self.alloc_buffer(rows * fout, x.dtype, "conv2d product")?;
        self.pointwise_rows(Pw::Add, &prod, b, &mut biased, rows, fout)?;
        self.transpose(&biased, out, g.n, ohw, fout)
    }

    /// The book's backward: db = Σ dout, dW = doutᵀ · col, dx = col2im(dout · W).
    #[allow(clippy::too_many_arguments)]
    fn conv_backward_im2col(
        self: &Arc<Self>,
        x: &GpuBuffer,
        w: &GpuBuffer,
        dout: &GpuBuffer,
        dx: Option<&mut GpuBuffer>,
        dw: &mut GpuBuffer,
        db: &mut GpuBuffer,
        g: &Conv2dGeom,
        fout: usize,
    ) -> Result<()> {
        let (rows, ckk, ohw) = (g.col_rows(), g.col_cols(), g.out_h() * g.out_w());
        let mut d2 = self.alloc_buffer(rows * fout, x.dtype, "conv2d_backward dout")?;
        self.transpose(dout, &mut d2, g.n, fout, ohw)?;
        self.sum_rows(&d2, db, rows, fout, 1.0)?;
        // The columns are rebuilt rather than kept from the forward.
        let mut col = self.alloc_buffer(rows * ckk, x.dtype, "conv2d columns")?;
        self.im2col(x, &mut col, g)?;
        let dw_spec = MatmulSpec {
            m: fout,
            n: ckk,
            k: rows,
            trans_a: true,
            trans_b: false,
            alpha: 1.0,
            beta: 0.0,
        };
        self.matmul(&d2, &col, dw, &dw_spec)?;
        let Some(dx) = dx else {
            return Ok(());
        };
        let dcol_spec = MatmulSpec {
            m: rows,
            n: ckk,
            k: fout,
            trans_a: false,
            trans_b: false,
            alpha: 1.0,
            beta: 0.0,
        };
        self.matmul(&d2, w, &mut col, &dcol_spec)?;
        self.col2im(&col, dx, g)
    }
}
