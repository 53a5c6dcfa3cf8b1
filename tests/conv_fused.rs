//! The fused convolution ops ([`Tensor::conv2d`], [`Tensor::conv2d_backward`]) against the
//! book's formulation composed from primitive ops (im2col, matmul, add_broadcast,
//! transpose_last2, sum_rows, col2im), on the CPU and on every GPU adapter.
//!
//! Tolerances are per element and derived from the terms summed: both sides add the same
//! products in different orders (per-image GEMMs and f64 bias sums on the CPU, one big matmul
//! in the composition, tiled kernels on a GPU), so they may differ by the rounding of those
//! sums. Each element's "magnitude" `S = Σ |term|` is computed by running the composition on
//! `|x|`, `|w|`, `|b|`, `|dout|` (every term then enters with its absolute value). Rounding a
//! sum of K terms in f32 contributes at most u·|partial sum| ≤ u·S per addition; those errors
//! behave like a random walk, so a sum is off by about u·√K·S and the two sides by twice that.
//! The test allows 4·u·√K·S + 1e-6 (u = 2⁻²⁴), about twice that estimate and still far below
//! the size of any indexing mistake (a term dropped, doubled or misplaced moves an element by
//! one whole term, ~S/K ≫ 4·u·√K·S for every K used here).

mod common;

use std::sync::{Mutex, MutexGuard, Once};
use wgnn::gpu::{ConvPath, MatmulKernel};
use wgnn::ops::Conv2dGeom;
use wgnn::ops::Kernels;
use wgnn::{Device, Result, Tensor};

/// Unit roundoff of f32.
const U: f32 = f32::EPSILON / 2.0;

/// One convolution: NCHW input, `f` filters of `kh`×`kw`, stride, pad.
#[derive(Clone, Copy, Debug)]
struct Case {
    x: [usize; 4],
    f: usize,
    kh: usize,
    kw: usize,
    stride: usize,
    pad: usize,
}

const fn case(x: [usize; 4], f: usize, kh: usize, kw: usize, stride: usize, pad: usize) -> Case {
    Case {
        x,
        f,
        kh,
        kw,
        stride,
        pad,
    }
}

/// Batches 1, 3, 5 (5 > 4 spans two of the CPU's weight-gradient blocks of 4 images), channels
/// 1 and 3, filters 1, 4, 7, kernels 1x1, 3x3, 5x5 and 2x3 / 3x2, strides 1–3, pads 0–2,
/// non-square inputs, and a kernel larger than the unpadded input.
const SMALL: [Case; 16] = [
    case([1, 1, 5, 5], 1, 3, 3, 1, 0),
    case([3, 3, 7, 9], 4, 3, 3, 1, 1),
    case([5, 3, 7, 9], 7, 3, 3, 2, 1),
    case([5, 1, 6, 6], 4, 1, 1, 1, 0),
    case([3, 1, 7, 9], 7, 1, 1, 2, 1), // 1x1 with padding: the border outputs are the bias
    case([3, 3, 9, 7], 7, 5, 5, 1, 2),
    case([5, 3, 11, 7], 1, 5, 5, 3, 1),
    case([1, 3, 4, 4], 4, 5, 5, 3, 2), // kernel larger than the unpadded input
    case([5, 3, 7, 9], 4, 2, 3, 1, 0), // non-square kernel, weights [F, C, 2, 3]
    case([1, 3, 7, 9], 7, 2, 3, 3, 2),
    case([3, 1, 9, 7], 4, 3, 2, 2, 1),
    case([9, 3, 5, 6], 4, 3, 3, 1, 1), // three blocks of images on the CPU
    // Taps that lie in the padding for every output (a 1×1 or 2×2 image under a 5×5 or 3×3
    // kernel, as GoogLeNet's and ResNet's last stages at 28 px); the CPU's im2col
    // underflowed its source index on these.
    case([2, 3, 1, 1], 4, 5, 5, 1, 2),
    case([2, 3, 1, 1], 4, 3, 3, 1, 1),
    case([2, 2, 2, 2], 3, 5, 5, 2, 2),
    // No tap reaches the image at all: every output is the bias (the CPU's batched path keeps
    // only live taps, here none).
    case([2, 2, 1, 1], 3, 1, 1, 2, 1),
];

/// The convolutions of the book's DeepConvNet (3x3, stride 1) at batch 2.
const DEEP_CONVNET: [Case; 6] = [
    case([2, 1, 28, 28], 16, 3, 3, 1, 1),
    case([2, 16, 28, 28], 16, 3, 3, 1, 1),
    case([2, 16, 14, 14], 32, 3, 3, 1, 1),
    case([2, 32, 14, 14], 32, 3, 3, 1, 2),
    case([2, 32, 8, 8], 64, 3, 3, 1, 1),
    case([2, 64, 8, 8], 64, 3, 3, 1, 1),
];

impl Case {
    fn geom(&self) -> Conv2dGeom {
        let [n, c, h, w] = self.x;
        Conv2dGeom {
            n,
            c,
            h,
            w,
            kh: self.kh,
            kw: self.kw,
            stride: self.stride,
            pad: self.pad,
        }
    }

    fn name(&self) -> String {
        format!(
            "x {:?} → {} filters {}x{} stride {} pad {}",
            self.x, self.f, self.kh, self.kw, self.stride, self.pad
        )
    }
}

/// The operands of one case, seeded, on the CPU.
struct Operands {
    x: Tensor,
    w: Tensor,
    b: Tensor,
    dout: Tensor,
}

impl Operands {
    fn new(c: &Case, seed: u64) -> Operands {
        let g = c.geom();
        let cpu = Device::Cpu;
        let wshape = [c.f, g.c, c.kh, c.kw];
        let oshape = [g.n, c.f, g.out_h(), g.out_w()];
        Operands {
            x: Tensor::randn(c.x, 0.0, 1.0, seed, &cpu).unwrap(),
            w: Tensor::randn(wshape, 0.0, 0.5, seed + 1, &cpu).unwrap(),
            b: Tensor::randn([c.f], 0.0, 1.0, seed + 2, &cpu).unwrap(),
            dout: Tensor::randn(oshape, 0.0, 1.0, seed + 3, &cpu).unwrap(),
        }
    }

    fn to_device(&self, dev: &Device) -> Operands {
        Operands {
            x: self.x.to_device(dev).unwrap(),
            w: self.w.to_device(dev).unwrap(),
            b: self.b.to_device(dev).unwrap(),
            dout: self.dout.to_device(dev).unwrap(),
        }
    }

    /// Every operand replaced by its absolute value.
    fn abs(&self) -> Operands {
        let abs = |t: &Tensor| {
            let v: Vec<f32> = t.to_vec::<f32>().unwrap().iter().map(|x| x.abs()).collect();
            Tensor::from_vec(v, t.dims(), &t.device()).unwrap()
        };
        Operands {
            x: abs(&self.x),
            w: abs(&self.w),
            b: abs(&self.b),
            dout: abs(&self.dout),
        }
    }
}

/// out, dx, dw, db read back.
struct Results {
    out: Vec<f32>,
    dx: Vec<f32>,
    dw: Vec<f32>,
    db: Vec<f32>,
}

fn read(t: &Tensor, shape: &[usize], what: &str) -> Vec<f32> {
    assert_eq!(t.dims(), shape, "{what}: shape");
    t.to_vec::<f32>().unwrap()
}

/// The fused ops.
fn fused(c: &Case, o: &Operands) -> Result<Results> {
    let g = c.geom();
    let out = o.x.conv2d(&o.w, &o.b, c.stride, c.pad)?;
    let (dx, dw, db) = o.x.conv2d_backward(&o.w, &o.dout, c.stride, c.pad)?;
    Ok(Results {
        out: read(&out, &[g.n, c.f, g.out_h(), g.out_w()], "fused out"),
        dx: read(&dx, &c.x, "fused dx"),
        dw: read(&dw, o.w.dims(), "fused dw"),
        db: read(&db, &[c.f], "fused db"),
    })
}

/// The book's `Convolution.forward` / `backward` from primitive ops.
fn composition(c: &Case, o: &Operands) -> Result<Results> {
    let g = c.geom();
    let (n, f, oh, ow) = (g.n, c.f, g.out_h(), g.out_w());
    let ckk = g.col_cols();
    let col = o.x.im2col(c.kh, c.kw, c.stride, c.pad)?;
    let w2 = o.w.reshape([f, ckk])?;
    let out = col
        .matmul_t(&w2, false, true)?
        .add(&o.b)?
        .reshape([n, oh * ow, f])?
        .transpose_last2()?
        .reshape([n, f, oh, ow])?;
    let d2 = o
        .dout
        .reshape([n, f, oh * ow])?
        .transpose_last2()?
        .reshape([n * oh * ow, f])?;
    let db = d2.sum_dim(&[0], false)?;
    let dw = d2.matmul_t(&col, true, false)?.reshape(o.w.dims())?;
    let dx = d2.matmul_t(&w2, false, false)?.col2im(&g)?;
    Ok(Results {
        out: read(&out, &[n, f, oh, ow], "composition out"),
        dx: read(&dx, &c.x, "composition dx"),
        dw: read(&dw, o.w.dims(), "composition dw"),
        db: read(&db, &[f], "composition db"),
    })
}

/// Terms per element of each output: out sums C·KH·KW products and the bias; dw and db sum
/// over every output position of the batch; a dx element gathers at most
/// F·⌈KH/stride⌉·⌈KW/stride⌉ products.
fn terms(c: &Case) -> [usize; 4] {
    let g = c.geom();
    let positions = g.n * g.out_h() * g.out_w();
    [
        g.col_cols() + 1,
        c.f * c.kh.div_ceil(c.stride) * c.kw.div_ceil(c.stride),
        positions,
        positions,
    ]
}

fn compare(what: &str, got: &Results, want: &Results, mag: &Results, terms: [usize; 4]) {
    let parts = [
        ("out", &got.out, &want.out, &mag.out, terms[0]),
        ("dx", &got.dx, &want.dx, &mag.dx, terms[1]),
        ("dw", &got.dw, &want.dw, &mag.dw, terms[2]),
        ("db", &got.db, &want.db, &mag.db, terms[3]),
    ];
    for (name, g, w, s, k) in parts {
        assert_eq!(g.len(), w.len(), "{what} {name}: length");
        let rt = 4.0 * U * (k as f32).sqrt();
        for i in 0..g.len() {
            let tol = rt * s[i] + 1e-6;
            let err = (g[i] - w[i]).abs();
            assert!(
                err <= tol,
                "{what} {name}: element {i}: got {}, want {} (|diff| {err} > tol {tol}; Σ|terms| {}, {k} terms)",
                g[i],
                w[i],
                s[i]
            );
        }
    }
}

/// Announces each device once per test binary.
fn devices() -> Vec<Device> {
    static ANNOUNCE: Once = Once::new();
    let devs = common::all_devices();
    ANNOUNCE.call_once(|| {
        for dev in &devs {
            println!(
                "conv_fused: fused conv2d / conv2d_backward vs the im2col composition on {dev}"
            );
        }
    });
    devs
}

/// Fused on the CPU vs the composition on the CPU, and fused on each GPU vs the same CPU
/// composition.
fn check_cases(cases: &[Case], seed: u64) {
    let devs = devices();
    for (i, c) in cases.iter().enumerate() {
        let ops = Operands::new(c, seed + 10 * i as u64);
        let want = composition(c, &ops).unwrap();
        let mag = composition(c, &ops.abs()).unwrap();
        for dev in &devs {
            for config in configs(dev) {
                let _set = config.select(dev);
                let what = format!("{} on {dev} ({config:?})", c.name());
                let got = fused(c, &ops.to_device(dev)).unwrap_or_else(|e| panic!("{what}: {e}"));
                compare(&what, &got, &want, &mag, terms(c));
            }
        }
    }
}

/// How a GPU runs the convolution: every path and GEMM configuration is checked.
#[derive(Clone, Copy, Debug)]
enum Config {
    /// The CPU backend.
    Cpu,
    /// Implicit GEMM with a matmul kernel (and, for the tiled one, a forced tile height).
    Implicit(MatmulKernel, Option<u32>),
    /// The im2col reference path.
    Im2col,
}

fn configs(dev: &Device) -> Vec<Config> {
    if dev.gpu_context().is_none() {
        return vec![Config::Cpu];
    }
    vec![
        Config::Implicit(MatmulKernel::RegisterBlocked, None),
        Config::Implicit(MatmulKernel::Tiled, None),
        Config::Implicit(MatmulKernel::Tiled, Some(16)),
        Config::Implicit(MatmulKernel::Tiled, Some(32)),
        Config::Implicit(MatmulKernel::Tiled, Some(64)),
        Config::Im2col,
    ]
}

/// A configuration selected on a shared GPU context until dropped (holders are serialised:
/// the tests of this binary share the contexts).
struct Selected<'a> {
    dev: &'a Device,
    _lock: MutexGuard<'static, ()>,
}

impl Config {
    fn select(self, dev: &Device) -> Selected<'_> {
        static LOCK: Mutex<()> = Mutex::new(());
        let lock = LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(ctx) = dev.gpu_context() {
            match self {
                Config::Cpu => {}
                Config::Implicit(kernel, rows) => {
                    ctx.set_conv_path(ConvPath::Implicit);
                    ctx.set_matmul_kernel(kernel);
                    ctx.set_tile_rows(rows);
                }
                Config::Im2col => ctx.set_conv_path(ConvPath::Im2col),
            }
        }
        Selected { dev, _lock: lock }
    }
}

impl Drop for Selected<'_> {
    fn drop(&mut self) {
        if let Some(ctx) = self.dev.gpu_context() {
            let kind = ctx.summary().device_type;
            ctx.set_conv_path(ConvPath::Implicit);
            ctx.set_matmul_kernel(
                MatmulKernel::from_env().unwrap_or(MatmulKernel::default_for(kind)),
            );
            ctx.set_tile_rows(None);
            ctx.set_relu_mask_in_gemm(kind != wgpu::DeviceType::Cpu);
        }
    }
}

#[test]
fn fused_matches_composition_small_geometries() {
    check_cases(&SMALL, 100);
}

#[test]
fn fused_matches_composition_deep_convnet_shapes() {
    check_cases(&DEEP_CONVNET, 200);
}

/// The CPU composition against a direct six-loop convolution in f64, so that the reference
/// the fused ops are held to is itself right (including the [F, C, KH, KW] weight layout of a
/// non-square kernel).
#[test]
fn composition_matches_direct_convolution() {
    for (i, c) in [SMALL[2], SMALL[9], SMALL[10]].iter().enumerate() {
        let o = Operands::new(c, 300 + i as u64);
        let got = composition(c, &o).unwrap();
        let mag = composition(c, &o.abs()).unwrap();
        let g = c.geom();
        let (x, w, b, d) = (
            o.x.to_vec::<f32>().unwrap(),
            o.w.to_vec::<f32>().unwrap(),
            o.b.to_vec::<f32>().unwrap(),
            o.dout.to_vec::<f32>().unwrap(),
        );
        let (oh, ow) = (g.out_h(), g.out_w());
        let mut out = vec![0f64; g.n * c.f * oh * ow];
        let mut dx = vec![0f64; x.len()];
        let mut dw = vec![0f64; w.len()];
        let mut db = vec![0f64; c.f];
        for n in 0..g.n {
            for f in 0..c.f {
                for oy in 0..oh {
                    for ox in 0..ow {
                        let oi = ((n * c.f + f) * oh + oy) * ow + ox;
                        out[oi] = b[f] as f64;
                        db[f] += d[oi] as f64;
                        for ch in 0..g.c {
                            for ky in 0..c.kh {
                                for kx in 0..c.kw {
                                    let iy = (oy * c.stride + ky) as isize - c.pad as isize;
                                    let ix = (ox * c.stride + kx) as isize - c.pad as isize;
                                    if iy < 0 || ix < 0 || iy >= g.h as isize || ix >= g.w as isize
                                    {
                                        continue;
                                    }
                                    let xi =
                                        ((n * g.c + ch) * g.h + iy as usize) * g.w + ix as usize;
                                    let wi = ((f * g.c + ch) * c.kh + ky) * c.kw + kx;
                                    out[oi] += x[xi] as f64 * w[wi] as f64;
                                    dx[xi] += d[oi] as f64 * w[wi] as f64;
                                    dw[wi] += d[oi] as f64 * x[xi] as f64;
                                }
                            }
                        }
                    }
                }
            }
        }
        let f32s = |v: Vec<f64>| v.into_iter().map(|x| x as f32).collect::<Vec<f32>>();
        let want = Results {
            out: f32s(out),
            dx: f32s(dx),
            dw: f32s(dw),
            db: f32s(db),
        };
        compare(
            &format!("composition vs direct, {}", c.name()),
            &got,
            &want,
            &mag,
            terms(c),
        );
    }
}

/// The CPU splits the batch into blocks of 4 images and adds the blocks' weight gradients in
/// block order whatever the thread count: two runs give the same bits.
#[test]
fn cpu_fused_is_deterministic() {
    for (i, c) in [SMALL[2], SMALL[11], DEEP_CONVNET[1]].iter().enumerate() {
        let o = Operands::new(c, 400 + i as u64);
        let runs: Vec<Results> = (0..2).map(|_| fused(c, &o).unwrap()).collect();
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<u32>>();
        for (name, a, b) in [
            ("out", &runs[0].out, &runs[1].out),
            ("dx", &runs[0].dx, &runs[1].dx),
            ("dw", &runs[0].dw, &runs[1].dw),
            ("db", &runs[0].db, &runs[1].db),
        ] {
            assert!(
                bits(a) == bits(b),
                "{}: CPU fused {name} differs between two runs",
                c.name()
            );
        }
    }
}

/// Output and input/weight/bias gradients of `f` at leaves (x, w, b), backward from `dout`.
fn with_grads(
    o: &Operands,
    f: impl Fn(&Tensor, &Tensor, &Tensor) -> Result<Tensor>,
) -> Result<Vec<Vec<f32>>> {
    let x = o.x.clone().requiring_grad()?;
    let w = o.w.clone().requiring_grad()?;
    let b = o.b.clone().requiring_grad()?;
    let y = f(&x, &w, &b)?;
    let dout = o.dout.reshape(y.dims().to_vec())?;
    y.backward_with(&dout)?;
    let mut out = vec![y.to_vec::<f32>()?];
    for t in [&x, &w, &b] {
        out.push(t.grad().expect("a gradient").to_vec::<f32>()?);
    }
    Ok(out)
}

/// Each of `got` within a small fraction of the largest magnitude of `want`'s tensor.
fn assert_matches(what: &str, got: &[Vec<f32>], want: &[Vec<f32>]) {
    for (k, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g.len(), w.len(), "{what}: output {k} length");
        let scale = w.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
        for (i, (a, b)) in g.iter().zip(w).enumerate() {
            assert!(
                (a - b).abs() <= 3e-5 * scale,
                "{what}: output {k} (0 = value, 1-3 = dx, dw, db) element {i}: {a} vs {b}"
            );
        }
    }
}

/// `conv2d_relu` (ReLU in the GEMM epilogue, its mask inside the gradient kernels on a GPU)
/// against `conv2d` then `relu` on the CPU, values and all three gradients, for every GPU
/// configuration.
#[test]
fn fused_conv_relu_matches_conv_then_relu() {
    let devs = devices();
    let cases = [
        SMALL[1],
        SMALL[2],
        SMALL[5],
        SMALL[10],
        DEEP_CONVNET[0],
        DEEP_CONVNET[4],
    ];
    for (i, c) in cases.iter().enumerate() {
        let ops = Operands::new(c, 400 + 10 * i as u64);
        let want = with_grads(&ops, |x, w, b| x.conv2d(w, b, c.stride, c.pad)?.relu()).unwrap();
        for dev in &devs {
            for config in configs(dev) {
                // The ReLU mask inside the gradient GEMMs, and in a pass before them.
                for in_gemm in [true, false] {
                    let _set = config.select(dev);
                    if let Some(ctx) = dev.gpu_context() {
                        ctx.set_relu_mask_in_gemm(in_gemm);
                    }
                    let what = format!(
                        "conv2d_relu {} on {dev} ({config:?}, mask in GEMM {in_gemm})",
                        c.name()
                    );
                    let got = with_grads(&ops.to_device(dev), |x, w, b| {
                        x.conv2d_relu(w, b, c.stride, c.pad)
                    })
                    .unwrap_or_else(|e| panic!("{what}: {e}"));
                    assert_matches(&what, &got, &want);
                }
            }
        }
    }
}

/// `linear` with and without ReLU (bias and ReLU in the GEMM epilogue on a GPU) against
/// matmul + add_broadcast (+ relu) on the CPU, values and gradients; shapes that take the
/// vec4 and the scalar register-blocked kernels and split K.
#[test]
fn fused_linear_matches_matmul_bias_relu() {
    let devs = devices();
    for (i, &(n, k, m)) in [(7, 5, 3), (100, 1024, 50), (8, 64, 12), (3, 9000, 4)]
        .iter()
        .enumerate()
    {
        let cpu = Device::Cpu;
        let ops = Operands {
            x: Tensor::randn([n, k], 0.0, 1.0, 500 + i as u64, &cpu).unwrap(),
            w: Tensor::randn([k, m], 0.0, 0.1, 600 + i as u64, &cpu).unwrap(),
            b: Tensor::randn([m], 0.0, 1.0, 700 + i as u64, &cpu).unwrap(),
            dout: Tensor::randn([n, m], 0.0, 1.0, 800 + i as u64, &cpu).unwrap(),
        };
        for relu in [false, true] {
            let want = with_grads(&ops, |x, w, b| {
                let z = x.matmul_t(w, false, false)?.add(b)?;
                if relu { z.relu() } else { Ok(z) }
            })
            .unwrap();
            for dev in &devs {
                for config in configs(dev) {
                    let _set = config.select(dev);
                    let what = format!("linear {n}x{k}x{m} relu {relu} on {dev} ({config:?})");
                    let got = with_grads(&ops.to_device(dev), |x, w, b| x.linear(w, b, relu))
                        .unwrap_or_else(|e| panic!("{what}: {e}"));
                    assert_matches(&what, &got, &want);
                }
            }
        }
    }
}
