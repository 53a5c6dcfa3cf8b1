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

use super::gemm_tune::{ConvPath, GemmConfig, MatmulKernel};
use super::u32_of;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::gpu::buffers::GpuBuffer;
use crate::gpu::context::GpuContext;
use crate::gpu::kernels::{KernelDef, matmul as k, uniform};
use crate::gpu::pipelines::KernelKey;
use crate::ops::{Backend, Conv2dGeom, MatmulSpec, Pw};
use std::sync::Arc;

uniform! {
    /// The uniform block of matmul.wgsl (`struct Params`).
    #[derive(Default)]
    pub(crate) struct MatmulParams {
        pub(super) m: u32,
        pub(super) n: u32,
        pub(super) k: u32,
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
}

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
pub(super) enum Mode {
    Matmul = 0,
    ConvForward = 1,
    ConvInputGrad = 2,
    ConvWeightGrad = 3,
}

/// One GEMM: sizes, mode, fused epilogue and operands.
#[derive(Clone, Copy)]
pub(super) struct Gemm<'a> {
    pub(super) mode: Mode,
    pub(super) p: MatmulParams,
    pub(super) trans_a: bool,
    pub(super) trans_b: bool,
    relu: bool,
    a: &'a GpuBuffer,
    b: &'a GpuBuffer,
    bias: Option<&'a GpuBuffer>,
    /// The ReLU output whose mask multiplies dout (modes 2 and 3).
    pub(super) mask: Option<&'a GpuBuffer>,
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
    pub(super) fn vec4_loads(&self) -> bool {
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

    /// Workgroup grid `[x, y]`, the split-K partials' kernel, and the key (kernel and override
    /// constants) of a GEMM of this shape. The last element is the number of threads that
    /// have outputs.
    fn gemm_plan(
        &self,
        g: &Gemm,
        cfg: GemmConfig,
    ) -> ([usize; 2], &'static KernelDef, KernelKey, usize) {
        let (m, n) = (g.p.m as usize, g.p.n as usize);
        let base = |kernel: &'static KernelDef| {
            KernelKey::new(kernel)
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
                &k::MATMUL_RB4_PART,
                base(&k::MATMUL_RB4),
                m.div_ceil(8) * n.div_ceil(8),
            ),
            MatmulKernel::RegisterBlocked => {
                // 64 threads sharing RB_M rows, RB_N columns each (strided by 64).
                let (rm, rn) = rb_shape(m, n);
                let key = base(&k::MATMUL_RB)
                    .constant("RB_M", rm as u32)
                    .constant("RB_N", rn as u32);
                (
                    [n.div_ceil(64 * rn), m.div_ceil(rm)],
                    &k::MATMUL_RB_PART,
                    key,
                    m.div_ceil(rm) * n.div_ceil(rn),
                )
            }
            MatmulKernel::Tiled => {
                let bm = cfg.tile_rows.unwrap_or_else(|| self.tile_rows_for(m));
                // 256 threads: BM / 4 rows of threads, so BN = 4 · 256 / (BM / 4).
                let bn = 4 * 256 / (bm as usize / 4);
                let key = base(&k::MATMUL_TILED).constant("BM", bm);
                (
                    [n.div_ceil(bn), m.div_ceil(bm as usize)],
                    &k::MATMUL_TILED_PART,
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

    /// Records one GEMM into `out` in configuration `cfg`.
    pub(super) fn gemm_with(
        self: &Arc<Self>,
        g: Gemm,
        out: GemmOut,
        cfg: GemmConfig,
    ) -> Result<()> {
        const OP: &str = "matmul";
        let (m, n, k) = (g.p.m as usize, g.p.n as usize, g.p.k as usize);
        let ([gx, gy], part_kernel, key, threads) = self.gemm_plan(&g, cfg);
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
            let bindings: &[(u32, &GpuBuffer)] = if std::ptr::eq(key.kernel, &k::MATMUL_RB4) {
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
        // At least one chunk of 16 when k is 0 (a convolution's weight gradient over an empty
        // batch), so the split count below divides by something.
        let chunk = k.div_ceil(splits.max(1)).next_multiple_of(16).max(16);
        let splits = k.div_ceil(chunk).max(1);
        let p = MatmulParams {
            k_chunk: u32_of(OP, chunk)?,
            splits: u32_of(OP, splits)?,
            ..g.p
        };
        let part = self.alloc_buffer(splits * m * n, DType::F32, "split-K partials")?;
        let part_key = key.for_kernel(part_kernel);
        let bindings: &[(u32, &GpuBuffer)] = if std::ptr::eq(part_kernel, &k::MATMUL_RB4_PART) {
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
                &KernelKey::new(&k::CONV_DW_FINAL),
                bytemuck::bytes_of(&p),
                &[(1, &*dw), (4, &part), (7, &*db)],
                self.grid(m * n, 256)?,
            ),
        }
    }
}

/// Where a GEMM's result goes.
pub(super) enum GemmOut<'a> {
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
        match dx {
            Some(dx) => self.input_grad_gemm(w, dout, relu_out, dx, g, fout),
            None => Ok(()), // nothing differentiates the input
        }
    }

    /// A convolution's input gradient alone (a transposed convolution's forward): the
    /// implicit GEMM's input-gradient pass, or on the im2col path `col2im(dout · W)`.
    pub(super) fn conv_input_grad(
        self: &Arc<Self>,
        w: &GpuBuffer,
        dout: &GpuBuffer,
        dx: &mut GpuBuffer,
        g: &Conv2dGeom,
        fout: usize,
    ) -> Result<()> {
        if self.conv_path() == ConvPath::Im2col {
            return self.conv_input_grad_im2col(w, dout, dx, g, fout);
        }
        self.input_grad_gemm(w, dout, None, dx, g, fout)
    }

    /// `dx` `[C, N·H·W]` over K = F·KH·KW by the implicit GEMM, `dout` masked by `relu_out`'s
    /// positive entries when given.
    fn input_grad_gemm(
        self: &Arc<Self>,
        w: &GpuBuffer,
        dout: &GpuBuffer,
        relu_out: Option<&GpuBuffer>,
        dx: &mut GpuBuffer,
        g: &Conv2dGeom,
        fout: usize,
    ) -> Result<()> {
        const OP: &str = "conv2d_input_grad";
        let geo = conv_params(OP, g, fout)?;
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
}
