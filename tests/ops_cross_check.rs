//! Cross-checks every op, forward and backward, on the CPU reference backend against every GPU
//! adapter wgpu can see (lavapipe included), with the same seeded inputs on both sides, plus a
//! few CPU-only checks against hand-computed values so that the reference itself is verified.
//!
//! `cargo test --test ops_cross_check -- --nocapture` prints the adapters the suite ran on;
//! `WGNN_REQUIRE_GPU=1` turns a missing adapter into a failure instead of a skip (see common).
//!
//! Inputs are always built on the CPU (seeded) and moved with `to_device`, so every device sees
//! bit-identical operands. Sizes stay modest: software adapters are ~15× slower than the CPU.

mod common;

use std::sync::{Mutex, MutexGuard, Once};
use wgnn::gpu::MatmulKernel;
use wgnn::ops::Kernels;
use wgnn::ops::{DropoutSpec, Pool2dGeom};
use wgnn::rng::{SplitMix64, counter_uniform};
use wgnn::{DType, Device, Result, Shape, Tensor};

/// Awkward sizes: 1, a small prime, and just past / between multiples of 4, 32 and 64.
const SIZES: [usize; 5] = [1, 7, 33, 100, 257];
/// The GEMM configurations every matmul-based op is checked with: the register-blocked kernel,
/// and the tiled kernel with its tile shape chosen per problem and forced to each of 16, 32
/// and 64 rows.
const KERNELS: [(MatmulKernel, Option<u32>); 5] = [
    (MatmulKernel::RegisterBlocked, None),
    (MatmulKernel::Tiled, None),
    (MatmulKernel::Tiled, Some(16)),
    (MatmulKernel::Tiled, Some(32)),
    (MatmulKernel::Tiled, Some(64)),
];
/// `(trans_a, trans_b)`.
const FLAGS: [(bool, bool); 4] = [(false, false), (false, true), (true, false), (true, true)];

// ---------------------------------------------------------------------------------------------
// Tolerances
// ---------------------------------------------------------------------------------------------

/// `|got - want| <= atol + rtol * |want|` elementwise (u32 outputs and shapes are always exact).
#[derive(Clone, Copy, Debug)]
struct Tol {
    atol: f32,
    rtol: f32,
}

impl Tol {
    /// Pure data movement or selection (im2col, transposes, relu, max-pool, fill, masks): the
    /// GPU must return the very same bits.
    const EXACT: Tol = Tol {
        atol: 0.0,
        rtol: 0.0,
    };
    /// One or two roundings per element (add, mul, axpy, …): a couple of ulps, plus an absolute
    /// floor for cancellation (a shader compiler may contract `y + a * x` into an fma).
    const ARITH: Tol = Tol {
        atol: 1e-6,
        rtol: 1e-6,
    };
    /// exp-based ops: WGSL only promises `exp` to 3 + 2|x| ulp, ~5e-6 relative for |x| ≤ 20.
    const EXP: Tol = Tol {
        atol: 1e-6,
        rtol: 2e-5,
    };

    /// Sums of `n` terms of size ~1 in f32 (the CPU reference often sums in f64, the kernels
    /// in another order): the rounding error of such a random walk is ≈ 0.35·eps·n, so allow
    /// 4e-7·n, about 10× that.
    fn sum(n: usize) -> Tol {
        Tol {
            atol: 1e-6 + 4e-7 * n as f32,
            rtol: 1e-5,
        }
    }

    /// A product with inner dimension `k` over N(0, 1) operands, scaled by `scale` (|alpha| +
    /// |beta| for `gemm_`). Outputs are ~√k in size and their f32 rounding error is ≈ 0.35·eps·k
    /// (≈ 1.1e-5 at k = 257); 2e-5·√k is ≥ 30× that there and grows with the output size.
    fn matmul(k: usize, scale: f32) -> Tol {
        Tol {
            atol: 2e-5 * (k.max(1) as f32).sqrt() * scale.max(1.0),
            rtol: 1e-5,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Devices, inputs, read-back and comparison
// ---------------------------------------------------------------------------------------------

/// One device per GPU adapter, announced once per test binary.
fn gpus() -> Vec<Device> {
    static ANNOUNCE: Once = Once::new();
    let gpus = common::gpus();
    ANNOUNCE.call_once(|| {
        if gpus.is_empty() {
            println!(
                "ops_cross_check: no GPU adapter, GPU part skipped (CPU reference checks only)"
            );
        }
        for dev in &gpus {
            println!("ops_cross_check: cross-checking CPU vs {dev}");
        }
    });
    gpus
}

/// A seeded N(0, std²) tensor on the CPU.
fn randn(shape: impl Into<Shape>, std: f32, seed: u64) -> Tensor {
    Tensor::randn(shape, 0.0, std, seed, &Device::Cpu).unwrap()
}

/// A seeded uniform `[low, high)` tensor on the CPU.
fn uniform(shape: impl Into<Shape>, low: f32, high: f32, seed: u64) -> Tensor {
    Tensor::rand_uniform(shape, low, high, seed, &Device::Cpu).unwrap()
}

/// d(Σ f(x)·dy)/dx by autograd: the vector-Jacobian product of `f` at `x`.
fn grad_of(x: &Tensor, dy: &Tensor, f: impl Fn(&Tensor) -> Result<Tensor>) -> Result<Tensor> {
    let x = x.detach().requiring_grad()?;
    f(&x)?.backward_with(dy)?;
    Ok(x.grad().expect("a gradient reaches x"))
}

/// Sums over every dim but the last (the old `sum_rows`: column sums of a `[rows, cols]` view).
fn column_sums(t: &Tensor) -> Result<Tensor> {
    let lead: Vec<isize> = (0..t.dims().len() as isize - 1).collect();
    t.sum_dim(&lead, false)
}

fn cpu_f32(data: Vec<f32>, shape: impl Into<Shape>) -> Tensor {
    Tensor::from_vec(data, shape, &Device::Cpu).unwrap()
}

/// Seeded class labels in `0..classes`, u32 `[rows]`.
fn labels(rows: usize, classes: usize, seed: u64) -> Tensor {
    let mut rng = SplitMix64::new(seed);
    let v: Vec<u32> = (0..rows)
        .map(|_| rng.below(classes as u64) as u32)
        .collect();
    Tensor::from_vec(v, [rows], &Device::Cpu).unwrap()
}

/// Distinct values (a seeded shuffle of 0..n, centred on 0, so half are negative): no ties,
/// so every maximum and its index are unique.
fn distinct(shape: &[usize], seed: u64) -> Tensor {
    let n: usize = shape.iter().product();
    let mut v: Vec<f32> = (0..n).map(|i| i as f32 - (n / 2) as f32).collect();
    let mut rng = SplitMix64::new(seed);
    for i in (1..n).rev() {
        v.swap(i, rng.below(i as u64 + 1) as usize);
    }
    cpu_f32(v, shape)
}

/// Values in {-1, 0, 1}: full of ties.
fn with_ties(shape: &[usize], seed: u64) -> Tensor {
    let v = randn(shape, 1.0, seed).to_vec::<f32>().unwrap();
    cpu_f32(
        v.iter().map(|x| x.round().clamp(-1.0, 1.0)).collect(),
        shape,
    )
}

fn vals(t: &Tensor) -> Vec<f32> {
    t.to_vec::<f32>().unwrap()
}

/// An op output read back to the host, with its shape.
#[derive(Debug)]
struct Out {
    shape: Vec<usize>,
    data: Data,
}

#[derive(Debug)]
enum Data {
    F32(Vec<f32>),
    U32(Vec<u32>),
}

impl Out {
    fn f32s(&self) -> &[f32] {
        match &self.data {
            Data::F32(v) => v,
            Data::U32(_) => panic!("expected an f32 output"),
        }
    }

    fn u32s(&self) -> &[u32] {
        match &self.data {
            Data::U32(v) => v,
            Data::F32(_) => panic!("expected a u32 output"),
        }
    }
}

fn read(t: &Tensor) -> Result<Out> {
    let data = match t.dtype() {
        DType::F32 => Data::F32(t.to_vec()?),
        DType::U32 => Data::U32(t.to_vec()?),
        DType::F16 => Data::F32(
            t.to_vec::<half::f16>()?
                .iter()
                .map(|v| v.to_f32())
                .collect(),
        ),
    };
    Ok(Out {
        shape: t.dims().to_vec(),
        data,
    })
}

type OpFn<'a> = &'a dyn Fn(&Device) -> Result<Vec<Tensor>>;

/// `f` on `dev`, its outputs read back (which also surfaces asynchronous wgpu errors).
fn run_on(dev: &Device, what: &str, f: OpFn) -> Vec<Out> {
    f(dev)
        .and_then(|ts| ts.iter().map(read).collect())
        .unwrap_or_else(|e| panic!("{what} on {dev}: {e}"))
}

/// Shapes and u32 outputs exactly, f32 outputs within `tol`.
fn compare(what: &str, got: &[Out], want: &[Out], tol: Tol) {
    assert_eq!(got.len(), want.len(), "{what}: number of outputs");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let what = format!("{what}, output {i}");
        assert_eq!(g.shape, w.shape, "{what}: shape");
        match (&g.data, &w.data) {
            (Data::F32(g), Data::F32(w)) => common::assert_close(&what, g, w, tol.atol, tol.rtol),
            (Data::U32(g), Data::U32(w)) => {
                assert_eq!(g.len(), w.len(), "{what}: length");
                if let Some(j) = (0..g.len()).find(|&j| g[j] != w[j]) {
                    panic!(
                        "{what}: u32 element {j}: got {}, want {} (must be exact)",
                        g[j], w[j]
                    );
                }
            }
            _ => panic!("{what}: dtypes differ"),
        }
    }
}

/// Runs `f` on the CPU (the reference) and on every GPU; `f` moves its CPU-built inputs to the
/// device it is given. Returns each device's outputs, CPU first, for extra checks.
fn cross_check(what: &str, tol: Tol, f: impl Fn(&Device) -> Result<Vec<Tensor>>) -> Vec<Vec<Out>> {
    let want = run_on(&Device::Cpu, what, &f);
    let mut all = Vec::new();
    for dev in gpus() {
        let got = run_on(&dev, what, &f);
        compare(&format!("{what} on {dev}"), &got, &want, tol);
        all.push(got);
    }
    all.insert(0, want);
    all
}

/// [`cross_check`] against one GPU only.
fn cross_check_on(dev: &Device, what: &str, tol: Tol, f: OpFn) {
    let want = run_on(&Device::Cpu, what, f);
    let got = run_on(dev, what, f);
    compare(&format!("{what} on {dev}"), &got, &want, tol);
}

/// [`cross_check`] for matmul-based ops: every GPU is checked once per matmul kernel. Returns
/// the CPU outputs.
fn cross_check_matmul(
    what: &str,
    tol: Tol,
    f: impl Fn(&Device) -> Result<Vec<Tensor>>,
) -> Vec<Out> {
    let want = run_on(&Device::Cpu, what, &f);
    for dev in gpus() {
        for kernel in KERNELS {
            let _kernel = use_kernel(&dev, kernel);
            let got = run_on(&dev, what, &f);
            compare(
                &format!("{what} on {dev} with the {kernel:?} kernel"),
                &got,
                &want,
                tol,
            );
        }
    }
    want
}

/// A GPU's matmul kernel, selected until dropped and then restored. The setting is per context
/// and the contexts are shared by every test of this binary, so holders are serialised.
struct KernelGuard<'a> {
    dev: &'a Device,
    prev: MatmulKernel,
    _lock: MutexGuard<'static, ()>,
}

fn use_kernel(dev: &Device, (kernel, tile_rows): (MatmulKernel, Option<u32>)) -> KernelGuard<'_> {
    static LOCK: Mutex<()> = Mutex::new(());
    let lock = LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let ctx = dev
        .gpu_context()
        .expect("matmul kernels exist only on GPUs");
    let prev = ctx.matmul_kernel();
    ctx.set_matmul_kernel(kernel);
    ctx.set_tile_rows(tile_rows);
    KernelGuard {
        dev,
        prev,
        _lock: lock,
    }
}

impl Drop for KernelGuard<'_> {
    fn drop(&mut self) {
        if let Some(ctx) = self.dev.gpu_context() {
            ctx.set_matmul_kernel(self.prev);
            ctx.set_tile_rows(None);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Naive references for the CPU-only checks
// ---------------------------------------------------------------------------------------------

/// Stored shapes of A and B for `op(A)` `[m, k]` and `op(B)` `[k, n]`.
fn operand_shapes(m: usize, n: usize, k: usize, ta: bool, tb: bool) -> ([usize; 2], [usize; 2]) {
    (
        if ta { [k, m] } else { [m, k] },
        if tb { [n, k] } else { [k, n] },
    )
}

/// `op(a) · op(b)` by the definition, in f64.
fn naive_matmul(
    a: &[f32],
    b: &[f32],
    (m, n, k): (usize, usize, usize),
    ta: bool,
    tb: bool,
) -> Vec<f64> {
    let at = |i: usize, p: usize| f64::from(if ta { a[p * m + i] } else { a[i * k + p] });
    let bt = |p: usize, j: usize| f64::from(if tb { b[j * k + p] } else { b[p * n + j] });
    let mut c = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            c[i * n + j] = (0..k).map(|p| at(i, p) * bt(p, j)).sum();
        }
    }
    c
}

fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| f64::from(x) * f64::from(y))
        .sum()
}

fn dot64(a: &[f64], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(&x, &y)| x * f64::from(y)).sum()
}

/// Max-pool by the definition: padded positions never win, the first maximum does.
fn naive_max_pool(x: &[f32], g: &Pool2dGeom) -> (Vec<f32>, Vec<u32>) {
    let (mut out, mut idx) = (Vec::new(), Vec::new());
    for plane in 0..g.n * g.c {
        for oy in 0..g.out_h() {
            for ox in 0..g.out_w() {
                let mut best: Option<(f32, usize)> = None;
                for ky in 0..g.ph {
                    for kx in 0..g.pw {
                        let (Some(iy), Some(ix)) = (
                            (oy * g.stride + ky).checked_sub(g.pad),
                            (ox * g.stride + kx).checked_sub(g.pad),
                        ) else {
                            continue;
                        };
                        if iy < g.h && ix < g.w {
                            let i = (plane * g.h + iy) * g.w + ix;
                            if best.is_none_or(|(v, _)| x[i] > v) {
                                best = Some((x[i], i));
                            }
                        }
                    }
                }
                let (v, i) = best.expect("every window covers an input element");
                out.push(v);
                idx.push(i as u32);
            }
        }
    }
    (out, idx)
}

// ---------------------------------------------------------------------------------------------
// CPU-only checks of the reference against hand-computed values
// ---------------------------------------------------------------------------------------------

#[test]
fn cpu_reference_matmul_known_values() -> Result<()> {
    let cpu = Device::Cpu;
    // [[1, 2, 3], [4, 5, 6]] · [[7, 8], [9, 10], [11, 12]] = [[58, 64], [139, 154]]
    let a = Tensor::from_slice(&[1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], [2, 3], &cpu)?;
    let b = Tensor::from_slice(&[7.0f32, 8.0, 9.0, 10.0, 11.0, 12.0], [3, 2], &cpu)?;
    assert_eq!(
        a.matmul_t(&b, false, false)?.to_vec::<f32>()?,
        [58.0, 64.0, 139.0, 154.0]
    );
    // aᵀ·a = [[17, 22, 27], [22, 29, 36], [27, 36, 45]]
    let ata = a.matmul_t(&a, true, false)?;
    assert_eq!(ata.dims(), [3, 3]);
    assert_eq!(
        ata.to_vec::<f32>()?,
        [17.0, 22.0, 27.0, 22.0, 29.0, 36.0, 27.0, 36.0, 45.0]
    );
    // a·aᵀ = [[14, 32], [32, 77]]
    assert_eq!(
        a.matmul_t(&a, false, true)?.to_vec::<f32>()?,
        [14.0, 32.0, 32.0, 77.0]
    );
    // gemm_: C = 2·a·b − 1·C with C = ones → [[115, 127], [277, 307]]
    let mut c = Tensor::full([2, 2], 1.0, &cpu)?;
    c.gemm_(&a, &b, false, false, 2.0, -1.0)?;
    assert_eq!(c.to_vec::<f32>()?, [115.0, 127.0, 277.0, 307.0]);

    // Every flag combination against the definition (f64).
    let (m, n, k) = (7, 5, 9);
    for (ta, tb) in FLAGS {
        let (sa, sb) = operand_shapes(m, n, k, ta, tb);
        let (a, b) = (randn(sa, 1.0, 1), randn(sb, 1.0, 2));
        let got = a.matmul_t(&b, ta, tb)?;
        assert_eq!(got.dims(), [m, n]);
        let want: Vec<f32> = naive_matmul(&vals(&a), &vals(&b), (m, n, k), ta, tb)
            .iter()
            .map(|&v| v as f32)
            .collect();
        common::assert_close(
            &format!("cpu matmul ta={ta} tb={tb}"),
            &vals(&got),
            &want,
            1e-5,
            1e-5,
        );
    }
    Ok(())
}

#[test]
fn cpu_reference_elementwise_broadcast_and_reductions_known_values() -> Result<()> {
    let cpu = Device::Cpu;
    let x = Tensor::from_slice(&[1.0f32, -2.0, 3.0, -4.0], [2, 2], &cpu)?;
    let y = Tensor::from_slice(&[10.0f32, 20.0], [2], &cpu)?;
    assert_eq!(x.add(&y)?.to_vec::<f32>()?, [11.0, 18.0, 13.0, 16.0]);
    let col = Tensor::from_slice(&[10.0f32, 20.0], [2, 1], &cpu)?;
    assert_eq!(x.add(&col)?.to_vec::<f32>()?, [11.0, 8.0, 23.0, 16.0]);
    assert_eq!(x.sum_to(&[2])?.to_vec::<f32>()?, [4.0, -6.0]);
    assert_eq!(x.sum_to(&[2, 1])?.to_vec::<f32>()?, [-1.0, -1.0]);
    assert_eq!(x.sum_dim(&[0], false)?.to_vec::<f32>()?, [4.0, -6.0]);
    assert_eq!(x.sum_dim(&[-1], false)?.to_vec::<f32>()?, [-1.0, -1.0]);
    assert_eq!(x.sum()?.to_vec::<f32>()?, [-2.0]);
    assert_eq!(x.mean()?.to_vec::<f32>()?, [-0.5]);
    assert_eq!(x.relu()?.to_vec::<f32>()?, [1.0, 0.0, 3.0, 0.0]);
    let dy = Tensor::full([2, 2], 5.0, &cpu)?;
    assert_eq!(
        grad_of(&x, &dy, |t| t.relu())?.to_vec::<f32>()?,
        [5.0, 0.0, 5.0, 0.0]
    );
    let s = Tensor::from_slice(&[0.0f32], [1], &cpu)?.sigmoid()?;
    assert_eq!(s.to_vec::<f32>()?, [0.5]);
    // dσ at y = 0.5 is 0.25.
    assert_eq!(
        grad_of(
            &Tensor::from_slice(&[0.0f32], [1], &cpu)?,
            &Tensor::full([1], 2.0, &cpu)?,
            |t| t.sigmoid()
        )?
        .to_vec::<f32>()?,
        [0.5]
    );
    let mut z = x.sub(&x.scale(2.0)?)?; // −x
    z.axpy_(3.0, &x)?; // 2x
    assert_eq!(z.mul(&x)?.to_vec::<f32>()?, [2.0, 8.0, 18.0, 32.0]);
    // [[1, 2, 3], [4, 5, 6]]ᵀ
    let t =
        Tensor::from_slice(&[1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], [2, 3], &cpu)?.transpose_last2()?;
    assert_eq!(t.dims(), [3, 2]);
    assert_eq!(t.to_vec::<f32>()?, [1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
    Ok(())
}

#[test]
fn cpu_reference_softmax_and_cross_entropy_known_values() -> Result<()> {
    let cpu = Device::Cpu;
    // softmax([1000, 1000]) = [1/2, 1/2] without overflow.
    let big = Tensor::from_slice(&[1000.0f32, 1000.0], [1, 2], &cpu)?.softmax(-1)?;
    assert_eq!(vals(&big), [0.5, 0.5]);
    // softmax([0, ln 2]) = [1/3, 2/3]. (Small logits here: the loss is formed as
    // max + ln Σ − x[label], which in f32 carries an absolute error of ~ulp(max).)
    let x = Tensor::from_slice(&[0.0f32, 2f32.ln(), 5.0, 5.0], [2, 2], &cpu)?;
    let p = x.softmax(-1)?;
    common::assert_close(
        "softmax",
        &vals(&p),
        &[1.0 / 3.0, 2.0 / 3.0, 0.5, 0.5],
        1e-7,
        1e-6,
    );
    // Loss per row: −ln(2/3) = ln 1.5 (label 1) and ln 2 (label 0); the mean of the two.
    let t = Tensor::from_slice(&[1u32, 0], [2], &cpu)?;
    let (loss, probs) = x.softmax_cross_entropy(&t)?;
    common::assert_close(
        "ce loss",
        &vals(&loss),
        &[(1.5f32.ln() + 2f32.ln()) / 2.0],
        1e-6,
        1e-6,
    );
    common::assert_close("ce probs", &vals(&probs), &vals(&p), 0.0, 0.0);
    // (probs − onehot) · dout / rows with dout = 4, rows = 2.
    let dx = probs.softmax_cross_entropy_backward(&t, 4.0)?;
    common::assert_close(
        "ce backward",
        &vals(&dx),
        &[2.0 / 3.0, -2.0 / 3.0, -1.0, 1.0],
        1e-6,
        1e-6,
    );
    // softmax backward: y · (dy − Σ dy·y); with dy = [1, 0]: [1/3·(1 − 1/3), 2/3·(0 − 1/3)].
    let y = Tensor::from_slice(&[1.0f32 / 3.0, 2.0 / 3.0], [1, 2], &cpu)?;
    let dy = Tensor::from_slice(&[1.0f32, 0.0], [1, 2], &cpu)?;
    common::assert_close(
        "softmax backward",
        &vals(&dy.softmax_backward(&y)?),
        &[2.0 / 9.0, -2.0 / 9.0],
        1e-7,
        1e-6,
    );
    // argmax: the first maximum wins; count_correct compares it with the labels.
    let s = Tensor::from_slice(&[1.0f32, 3.0, 3.0, 2.0, 1.0, 0.0], [2, 3], &cpu)?;
    assert_eq!(s.argmax_rows()?.to_vec::<u32>()?, [1, 0]);
    let t = Tensor::from_slice(&[1u32, 1], [2], &cpu)?;
    assert_eq!(s.count_correct(&t)?.to_vec::<u32>()?, [1]);
    Ok(())
}

#[test]
fn cpu_reference_im2col_col2im_known_values() -> Result<()> {
    let cpu = Device::Cpu;
    let x = Tensor::from_vec((1..=9).map(|v| v as f32).collect(), [1, 1, 3, 3], &cpu)?;
    // 2×2 windows, stride 1, no padding: 4 rows of 4.
    let col = x.im2col(2, 2, 1, 0)?;
    assert_eq!(col.dims(), [4, 4]);
    #[rustfmt::skip]
    let want = [1.0, 2.0, 4.0, 5.0,  2.0, 3.0, 5.0, 6.0,  4.0, 5.0, 7.0, 8.0,  5.0, 6.0, 8.0, 9.0];
    assert_eq!(col.to_vec::<f32>()?, want);
    // col2im adds overlapping windows back: the centre is in all 4, corners in 1.
    let back = col.col2im(&x.conv_geom(2, 2, 1, 0)?)?;
    assert_eq!(
        back.to_vec::<f32>()?,
        [1.0, 4.0, 3.0, 8.0, 20.0, 12.0, 7.0, 16.0, 9.0]
    );
    // 3×3, stride 2, pad 1: 2×2 windows; the first sees the zero padding above and left.
    let col = x.im2col(3, 3, 2, 1)?;
    assert_eq!(col.dims(), [4, 9]);
    assert_eq!(
        &col.to_vec::<f32>()?[..9],
        [0.0, 0.0, 0.0, 0.0, 1.0, 2.0, 0.0, 4.0, 5.0]
    );
    assert_eq!(
        &col.to_vec::<f32>()?[27..],
        [5.0, 6.0, 0.0, 8.0, 9.0, 0.0, 0.0, 0.0, 0.0]
    );

    // col2im is the adjoint of im2col: <im2col(x), c> = <x, col2im(c)>.
    let x = randn([2, 3, 7, 9], 1.0, 3);
    for (k, s, p) in [(3, 1, 1), (5, 2, 2), (2, 2, 0)] {
        let g = x.conv_geom(k, k, s, p)?;
        let c = randn([g.col_rows(), g.col_cols()], 1.0, 4);
        let lhs = dot(&vals(&x.im2col(k, k, s, p)?), &vals(&c));
        let rhs = dot(&vals(&x), &vals(&c.col2im(&g)?));
        assert!(
            (lhs - rhs).abs() <= 1e-4 * lhs.abs().max(1.0),
            "adjoint k={k} s={s} p={p}: {lhs} vs {rhs}"
        );
    }
    Ok(())
}

#[test]
fn cpu_reference_max_pool_known_values() -> Result<()> {
    let cpu = Device::Cpu;
    #[rustfmt::skip]
    let x = Tensor::from_slice(&[
        1.0f32, 3.0, 2.0, 4.0,
        5.0,    0.0, 7.0, 6.0,
        1.0,    1.0, 2.0, 2.0,
        1.0,    1.0, 2.0, 2.0,
    ], [1, 1, 4, 4], &cpu)?;
    let (out, idx) = x.max_pool2d(2, 2, 2, 0)?;
    assert_eq!(out.to_vec::<f32>()?, [5.0, 7.0, 1.0, 2.0]);
    // The last two windows are all ties: the first element (in scan order) wins.
    assert_eq!(idx.to_vec::<u32>()?, [4, 6, 8, 10]);
    let g = x.pool_geom(2, 2, 2, 0)?;
    let dy = Tensor::from_slice(&[1.0f32, 2.0, 3.0, 4.0], [1, 1, 2, 2], &cpu)?;
    let dx = dy.max_pool2d_backward(&idx, &g)?.to_vec::<f32>()?;
    assert_eq!(
        dx,
        [
            0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 2.0, 0.0, 3.0, 0.0, 4.0, 0.0, 0.0, 0.0, 0.0, 0.0
        ]
    );
    // Padding never wins, even over negative inputs.
    let neg = Tensor::full([1, 1, 3, 3], -3.0, &cpu)?;
    let (out, idx) = neg.max_pool2d(2, 2, 1, 1)?;
    assert_eq!(out.to_vec::<f32>()?, [-3.0; 16]);
    let g = neg.pool_geom(2, 2, 1, 1)?;
    assert_eq!(idx.to_vec::<u32>()?, naive_max_pool(&vals(&neg), &g).1);
    // Overlapping windows (stride 1 < window 2) send the gradient of each to its argmax.
    let dx = Tensor::full([1, 1, 4, 4], 1.0, &cpu)?.max_pool2d_backward(&idx, &g)?;
    let dx_sum: f32 = vals(&dx).iter().sum();
    assert_eq!(dx_sum, 16.0);
    Ok(())
}

#[test]
fn cpu_reference_dropout_mask_and_reshape() -> Result<()> {
    let cpu = Device::Cpu;
    let spec = DropoutSpec {
        ratio: 0.3,
        scale: 1.0 / 0.7,
        seed: 42,
        offset: 5,
    };
    let m = Tensor::dropout_mask([100], &spec, &cpu)?.to_vec::<f32>()?;
    for (i, &v) in m.iter().enumerate() {
        let kept = counter_uniform(spec.seed, spec.offset + i as u32) >= spec.ratio;
        assert_eq!(v, if kept { spec.scale } else { 0.0 }, "mask element {i}");
    }
    assert!(Tensor::dropout_mask([4], &DropoutSpec { ratio: 1.0, ..spec }, &cpu).is_err());
    let x = randn([6, 4], 1.0, 1);
    let r = x.try_clone()?.reshape([3, 8])?;
    assert_eq!(r.dims(), [3, 8]);
    assert_eq!(vals(&r), vals(&x));
    assert!(x.reshape([5, 5]).is_err());
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Matmul: both kernels, all transpose flags, forward, backward and gemm_ accumulation
// ---------------------------------------------------------------------------------------------

/// Every awkward size in every position (m, n, k), aligned and just-misaligned tiles, and a few
/// seeded random picks.
fn matmul_shapes() -> Vec<(usize, usize, usize)> {
    let mut shapes = vec![
        (1, 1, 1),
        (1, 257, 7),
        (257, 1, 33),
        (7, 33, 100),
        (33, 7, 257),
        (100, 100, 1),
        (257, 100, 257),
        (64, 64, 64),
        (65, 31, 17),
        // The vec4 register-blocked kernel (K, and M or N, multiples of 4) with ragged 8x8
        // blocks, and split K.
        (12, 20, 8),
        (36, 516, 12),
        (100, 52, 40),
        (8, 12, 8200),
    ];
    let mut rng = SplitMix64::new(2024);
    let mut pick = || SIZES[rng.below(SIZES.len() as u64) as usize];
    for _ in 0..3 {
        shapes.push((pick(), pick(), pick()));
    }
    shapes
}

#[test]
fn matmul_forward_all_flags_both_kernels() {
    for (i, (m, n, k)) in matmul_shapes().into_iter().enumerate() {
        for (ta, tb) in FLAGS {
            let (sa, sb) = operand_shapes(m, n, k, ta, tb);
            let (a, b) = (
                randn(sa, 1.0, 100 + i as u64),
                randn(sb, 1.0, 200 + i as u64),
            );
            let what = format!("matmul m={m} n={n} k={k} trans_a={ta} trans_b={tb}");
            cross_check_matmul(&what, Tol::matmul(k, 1.0), |dev| {
                Ok(vec![a.to_device(dev)?.matmul_t(
                    &b.to_device(dev)?,
                    ta,
                    tb,
                )?])
            });
        }
    }
}

/// The backward of `C = op(A)·op(B)` is two more products with transpose flags:
/// `dA = dC·op(B)ᵀ` (transposed back when A is stored transposed) and `dB = op(A)ᵀ·dC`.
#[test]
fn matmul_backward_via_transpose_flags() {
    for (i, (m, n, k)) in [
        (33, 7, 100),
        (1, 257, 7),
        (100, 33, 1),
        (257, 1, 33),
        (7, 100, 257),
    ]
    .into_iter()
    .enumerate()
    {
        for (ta, tb) in FLAGS {
            let (sa, sb) = operand_shapes(m, n, k, ta, tb);
            let (a, b, dc) = (
                randn(sa, 1.0, 300 + i as u64),
                randn(sb, 1.0, 400 + i as u64),
                randn([m, n], 1.0, 500 + i as u64),
            );
            let what = format!("matmul backward m={m} n={n} k={k} trans_a={ta} trans_b={tb}");
            let cpu = cross_check_matmul(&what, Tol::matmul(m.max(n).max(k), 1.0), |dev| {
                let (a, b, dc) = (a.to_device(dev)?, b.to_device(dev)?, dc.to_device(dev)?);
                let c = a.matmul_t(&b, ta, tb)?;
                // ta: dA = (dC·op(B)ᵀ)ᵀ = op(B)·dCᵀ, else dC·op(B)ᵀ.
                let da = if ta {
                    b.matmul_t(&dc, tb, true)?
                } else {
                    dc.matmul_t(&b, false, !tb)?
                };
                // tb: dB = (op(A)ᵀ·dC)ᵀ = dCᵀ·op(A), else op(A)ᵀ·dC.
                let db = if tb {
                    dc.matmul_t(&a, true, ta)?
                } else {
                    a.matmul_t(&dc, !ta, false)?
                };
                Ok(vec![c, da, db])
            });
            // The reference's gradients are right: for L = <dC, op(A)·op(B)> and any direction
            // (A', B'), dL = <dA, A'> + <dB, B'> = <dC, op(A')·op(B) + op(A)·op(B')>.
            assert_eq!(cpu[1].shape, sa);
            assert_eq!(cpu[2].shape, sb);
            let (a2, b2) = (vals(&randn(sa, 1.0, 600)), vals(&randn(sb, 1.0, 700)));
            let (av, bv, dcv) = (vals(&a), vals(&b), vals(&dc));
            let lhs = dot(cpu[1].f32s(), &a2) + dot(cpu[2].f32s(), &b2);
            let rhs = dot64(&naive_matmul(&a2, &bv, (m, n, k), ta, tb), &dcv)
                + dot64(&naive_matmul(&av, &b2, (m, n, k), ta, tb), &dcv);
            assert!(
                (lhs - rhs).abs() <= 1e-4 * rhs.abs().max(1.0),
                "{what}: directional derivative {lhs} vs {rhs}"
            );
        }
    }
}

#[test]
fn gemm_alpha_beta_accumulation() {
    for (i, (m, n, k)) in [(7, 33, 100), (33, 1, 257), (100, 100, 7), (1, 7, 1)]
        .into_iter()
        .enumerate()
    {
        for (ta, tb) in FLAGS {
            let (sa, sb) = operand_shapes(m, n, k, ta, tb);
            let (a, b, c0) = (
                randn(sa, 1.0, 800 + i as u64),
                randn(sb, 1.0, 900 + i as u64),
                randn([m, n], 1.0, 1000 + i as u64),
            );
            for (alpha, beta) in [(1.0, 1.0), (0.5, -2.0), (-1.5, 0.25)] {
                let what = format!(
                    "gemm_ m={m} n={n} k={k} trans_a={ta} trans_b={tb} alpha={alpha} beta={beta}"
                );
                cross_check_matmul(
                    &what,
                    Tol::matmul(k, f32::abs(alpha) + f32::abs(beta)),
                    |dev| {
                        let (a, b) = (a.to_device(dev)?, b.to_device(dev)?);
                        let mut c = c0.to_device(dev)?;
                        c.gemm_(&a, &b, ta, tb, alpha, beta)?;
                        Ok(vec![c])
                    },
                );
            }
            // beta = 0 must not read C at all: NaNs there must not leak into the result.
            let what =
                format!("gemm_ over NaN with beta=0 m={m} n={n} k={k} trans_a={ta} trans_b={tb}");
            let outs = cross_check_matmul(&what, Tol::matmul(k, 2.0), |dev| {
                let mut c = Tensor::full([m, n], f32::NAN, dev)?;
                c.gemm_(&a.to_device(dev)?, &b.to_device(dev)?, ta, tb, 2.0, 0.0)?;
                Ok(vec![c])
            });
            assert!(
                outs[0].f32s().iter().all(|v| v.is_finite()),
                "{what}: NaN on the CPU"
            );
        }
    }

    // An empty inner dimension (k = 0): the product is zeros and gemm_ only scales C.
    let c0 = randn([3, 4], 1.0, 1100);
    for (ta, tb) in FLAGS {
        let (sa, sb) = operand_shapes(3, 4, 0, ta, tb);
        for beta in [0.0, 0.5] {
            let what = format!("matmul/gemm_ with k=0 trans_a={ta} trans_b={tb} beta={beta}");
            let cpu = cross_check_matmul(&what, Tol::ARITH, |dev| {
                let (a, b) = (
                    Tensor::zeros(sa, DType::F32, dev)?,
                    Tensor::zeros(sb, DType::F32, dev)?,
                );
                let mut c = c0.to_device(dev)?;
                c.gemm_(&a, &b, ta, tb, 2.0, beta)?;
                Ok(vec![a.matmul_t(&b, ta, tb)?, c])
            });
            assert_eq!(cpu[0].f32s(), [0.0; 12], "{what}");
            let want: Vec<f32> = vals(&c0).iter().map(|v| beta * v).collect();
            common::assert_close(&what, cpu[1].f32s(), &want, 1e-7, 1e-7);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Elementwise ops
// ---------------------------------------------------------------------------------------------

/// Shapes for the elementwise ops: every awkward size, as rank 1, 2 and 3.
fn elementwise_shapes() -> Vec<Vec<usize>> {
    SIZES
        .iter()
        .flat_map(|&n| [vec![n], vec![n, 33], vec![3, n, 7]])
        .collect()
}

#[test]
fn add_sub_mul() {
    for (i, shape) in elementwise_shapes().into_iter().enumerate() {
        let (x, y) = (
            randn(&shape[..], 1.0, 2 * i as u64),
            randn(&shape[..], 3.0, 2 * i as u64 + 1),
        );
        cross_check(&format!("add/sub/mul {shape:?}"), Tol::ARITH, |dev| {
            let (x, y) = (x.to_device(dev)?, y.to_device(dev)?);
            Ok(vec![x.add(&y)?, x.sub(&y)?, x.mul(&y)?])
        });
    }
}

#[test]
fn scale_axpy_fill_full() {
    for (i, shape) in elementwise_shapes().into_iter().enumerate() {
        let (x, y) = (
            randn(&shape[..], 1.0, 50 + i as u64),
            randn(&shape[..], 1.0, 80 + i as u64),
        );
        cross_check(&format!("scale/axpy_ {shape:?}"), Tol::ARITH, |dev| {
            let x = x.to_device(dev)?;
            let mut acc = y.to_device(dev)?;
            acc.axpy_(-0.75, &x)?;
            acc.axpy_(2.0, &x)?; // in place twice: y + 1.25 x
            Ok(vec![x.scale(0.5)?, x.scale(-3.0)?, x.scale(0.0)?, acc])
        });
        cross_check(&format!("fill_/full/zeros {shape:?}"), Tol::EXACT, |dev| {
            let mut x = x.to_device(dev)?;
            x.fill_(-2.5)?;
            let zeros = Tensor::zeros(&shape[..], DType::F32, dev)?;
            Ok(vec![
                x,
                Tensor::full(&shape[..], 1e-3, dev)?,
                Tensor::full(&shape[..], -7.0, dev)?,
                zeros,
            ])
        });
    }
}

#[test]
fn tanh_leaky_relu_exp_log_and_backward() {
    for (i, shape) in elementwise_shapes().into_iter().enumerate() {
        let mut xv = vals(&randn(&shape[..], 3.0, 130 + i as u64));
        xv.iter_mut().step_by(7).for_each(|v| *v = 0.0);
        let x = cpu_f32(xv, &shape[..]);
        let pos = uniform(&shape[..], 0.05, 20.0, 140 + i as u64);
        let dy = randn(&shape[..], 1.0, 150 + i as u64);
        cross_check(&format!("tanh, exp, log {shape:?}"), Tol::EXP, |dev| {
            let (x, pos) = (x.to_device(dev)?, pos.to_device(dev)?);
            Ok(vec![x.tanh()?, x.exp()?, pos.log()?])
        });
        cross_check(
            &format!("leaky_relu and its backward {shape:?}"),
            Tol::ARITH,
            |dev| {
                let (x, dy) = (x.to_device(dev)?, dy.to_device(dev)?);
                Ok(vec![
                    x.leaky_relu(0.1)?,
                    grad_of(&x, &dy, |x| x.leaky_relu(0.1))?,
                ])
            },
        );
        cross_check(
            &format!("tanh, exp, log backward {shape:?}"),
            Tol::EXP,
            |dev| {
                let (x, pos, dy) = (x.to_device(dev)?, pos.to_device(dev)?, dy.to_device(dev)?);
                Ok(vec![
                    grad_of(&x, &dy, |x| x.tanh())?,
                    grad_of(&x, &dy, |x| x.exp())?,
                    grad_of(&pos, &dy, |x| x.log())?,
                ])
            },
        );
    }
    // Far ends: tanh saturates to exactly ±1 without NaN on every device; known values.
    let x = cpu_f32(vec![-1e4, -30.0, -1.0, 0.0, 0.5, 30.0, 1e4], [7]);
    for outs in cross_check("tanh saturation", Tol::EXP, |dev| {
        Ok(vec![x.to_device(dev)?.tanh()?])
    }) {
        let t = outs[0].f32s();
        assert_eq!((t[0], t[3], t[6]), (-1.0, 0.0, 1.0), "{t:?}");
        assert!((t[2] + 0.761_594_2).abs() < 1e-6 && (t[4] - 0.462_117_2).abs() < 1e-6);
    }
}

#[test]
fn slicing_pooling_embedding_softplus_and_backward() {
    for (i, &n) in SIZES.iter().enumerate() {
        let seed = 170 + 10 * i as u64;
        let x = randn([2, 3, n.min(40) + 2, 5], 1.0, seed);
        let y = randn([2, 4, n.min(40) + 2, 5], 1.0, seed + 1);
        let dims = x.dims().to_vec();
        cross_check(&format!("narrow and cat {dims:?}"), Tol::EXACT, |dev| {
            let (x, y) = (x.to_device(dev)?, y.to_device(dev)?);
            Ok(vec![
                x.narrow(2, 1, dims[2] - 1)?,
                x.narrow(3, 2, 2)?,
                Tensor::cat(&[&x, &y, &x], 1)?,
                Tensor::cat(&[&x, &x], 0)?,
            ])
        });
        let dy = randn([2, 3 + 4 + 3, dims[2], 5], 1.0, seed + 2);
        cross_check(&format!("cat backward {dims:?}"), Tol::EXACT, |dev| {
            let (x, y, dy) = (x.to_device(dev)?, y.to_device(dev)?, dy.to_device(dev)?);
            let (xl, yl) = (x.detach().requiring_grad()?, y.detach().requiring_grad()?);
            Tensor::cat(&[&xl, &yl, &xl], 1)?.backward_with(&dy)?;
            Ok(vec![xl.grad().expect("dx"), yl.grad().expect("dy")])
        });
        let pooled = randn([2, 3, dims[2] / 2, 2], 1.0, seed + 3);
        cross_check(&format!("avg pools {dims:?}"), Tol::sum(9), |dev| {
            let (x, dp) = (x.to_device(dev)?, pooled.to_device(dev)?);
            Ok(vec![
                x.avg_pool2d(2, 2, 0)?,
                x.avg_pool2d(3, 2, 1)?,
                x.global_avg_pool2d()?,
                grad_of(&x, &dp, |x| x.avg_pool2d(2, 2, 0))?,
            ])
        });
        let table = randn([n + 3, 6], 1.0, seed + 4);
        let idx: Vec<u32> = (0..2 * n as u32)
            .map(|k| (k * 7 + 1) % (n as u32 + 3))
            .collect();
        let idx = Tensor::from_vec(idx, [2, n], &Device::Cpu).unwrap();
        let de = randn([2, n, 6], 1.0, seed + 5);
        cross_check(
            &format!("embedding and one_hot, {n} rows"),
            Tol::sum(2 * n),
            |dev| {
                let (t, idx, de) = (
                    table.to_device(dev)?,
                    idx.to_device(dev)?,
                    de.to_device(dev)?,
                );
                Ok(vec![
                    t.embedding(&idx)?,
                    idx.reshape([2 * n])?.one_hot(n + 3, DType::F32)?,
                    grad_of(&t, &de, |t| t.embedding(&idx))?,
                ])
            },
        );
        let z = randn([n, 9], 4.0, seed + 6);
        let dz = randn([n, 9], 1.0, seed + 7);
        cross_check(
            &format!("softplus and backward [{n}, 9]"),
            Tol::EXP,
            |dev| {
                let (z, dz) = (z.to_device(dev)?, dz.to_device(dev)?);
                Ok(vec![z.softplus()?, grad_of(&z, &dz, |z| z.softplus())?])
            },
        );
    }
}

#[test]
fn batch_norm_forward_and_backward() {
    // (N, C, S): per-feature (S = 1), per-channel, one channel, and a channel of 33·257 values.
    for (i, (n, c, s)) in [(7, 5, 1), (4, 3, 33), (2, 1, 100), (33, 2, 257)]
        .into_iter()
        .enumerate()
    {
        let seed = 190 + 10 * i as u64;
        let x = randn([n, c, s], 2.0, seed);
        let gamma = uniform([c], 0.5, 1.5, seed + 1);
        let beta = randn([c], 1.0, seed + 2);
        let dy = randn([n, c, s], 1.0, seed + 3);
        cross_check(
            &format!("batch_norm_train [{n}, {c}, {s}] and backward"),
            Tol::sum(n * s),
            |dev| {
                let (x, dy) = (x.to_device(dev)?.requiring_grad()?, dy.to_device(dev)?);
                let gamma = gamma.to_device(dev)?.requiring_grad()?;
                let beta = beta.to_device(dev)?.requiring_grad()?;
                let (y, mean, var) = x.batch_norm_train(&gamma, &beta, 1e-5)?;
                y.backward_with(&dy)?;
                let grad = |t: &Tensor| t.grad().expect("a gradient");
                Ok(vec![
                    y.detach(),
                    mean,
                    var,
                    grad(&x),
                    grad(&gamma),
                    grad(&beta),
                ])
            },
        );
    }
}

#[test]
fn bilinear_resize() {
    // PyTorch's interpolate(mode="bilinear", align_corners=False) of [[1, 2], [3, 4]] to 4×4.
    let x = cpu_f32(vec![1.0, 2.0, 3.0, 4.0], [1, 1, 2, 2]);
    let want = [
        1.0, 1.25, 1.75, 2.0, 1.5, 1.75, 2.25, 2.5, 2.5, 2.75, 3.25, 3.5, 3.0, 3.25, 3.75, 4.0,
    ];
    assert_eq!(vals(&x.resize_bilinear(4, 4).unwrap()), want);
    for (i, (h, w, oh, ow)) in [
        (28, 28, 96, 96),
        (28, 28, 224, 224),
        (7, 5, 3, 11),
        (1, 9, 4, 2),
    ]
    .into_iter()
    .enumerate()
    {
        let x = uniform([2, 3, h, w], 0.0, 1.0, 210 + i as u64);
        cross_check(&format!("resize {h}x{w} -> {oh}x{ow}"), Tol::ARITH, |dev| {
            Ok(vec![x.to_device(dev)?.resize_bilinear(oh, ow)?])
        });
    }
    let leaf = cpu_f32(vec![0.0; 4], [1, 1, 2, 2])
        .requiring_grad()
        .unwrap();
    let e = leaf
        .resize_bilinear(3, 3)
        .expect_err("a graph input")
        .to_string();
    assert!(e.contains("not differentiable"), "{e}");
}

#[test]
fn augmentation_is_the_same_on_every_device() {
    use wgnn::data::Mnist;
    use wgnn::ops::AugmentSpec;
    let mnist = Mnist::load_default().unwrap();
    let px: Vec<f32> = mnist.train.images[..6 * 784]
        .iter()
        .map(|&b| b as f32 / 255.0)
        .collect();
    let x = cpu_f32(px.clone(), [6, 1, 28, 28]);
    let strong = AugmentSpec {
        rotate: 15.0,
        scale: 0.15,
        shift: 3.0,
        flip: true,
        brightness: 0.2,
        contrast: 0.3,
        elastic_alpha: 34.0,
        elastic_sigma: 4.0,
        seed: 42,
        offset: 100,
    };
    let outs = cross_check(
        "augment (rotation, scale, shift, flip, brightness, contrast, elastic)",
        Tol {
            atol: 1e-5,
            rtol: 0.0,
        },
        |dev| Ok(vec![x.to_device(dev)?.augment(&strong)?]),
    );
    let got = outs[0][0].f32s();
    assert!(
        got.iter().all(|v| (0.0..=1.0).contains(v)),
        "values leave [0, 1]"
    );
    assert!(
        common::max_abs_diff(got, &px) > 0.1,
        "the images did not change"
    );
    // The same seed and position give the same image; another seed another one.
    let again = vals(&x.augment(&strong).unwrap());
    assert_eq!(again, got);
    let other = vals(&x.augment(&AugmentSpec { seed: 43, ..strong }).unwrap());
    assert!(common::max_abs_diff(&other, got) > 0.1);
    // Elastic distortion alone (Simard's α 34, σ 4) moves strokes locally: the image changes
    // but keeps roughly its ink, and it is again the same on every device.
    let elastic = AugmentSpec {
        elastic_alpha: 34.0,
        elastic_sigma: 4.0,
        seed: 42,
        offset: 100,
        ..AugmentSpec::NONE
    };
    let outs = cross_check(
        "augment (elastic only)",
        Tol {
            atol: 1e-5,
            rtol: 0.0,
        },
        |dev| Ok(vec![x.to_device(dev)?.augment(&elastic)?]),
    );
    let warped = outs[0][0].f32s();
    assert!(
        common::max_abs_diff(warped, &px) > 0.3,
        "elastic: no change"
    );
    for img in 0..6 {
        let ink = |v: &[f32]| v[img * 784..(img + 1) * 784].iter().sum::<f32>();
        let (before, after) = (ink(&px), ink(warped));
        assert!(
            (after - before).abs() < 0.2 * before,
            "image {img}: ink {before} became {after}"
        );
    }
    // A weaker field moves pixels less.
    let weak = vals(
        &x.augment(&AugmentSpec {
            elastic_alpha: 4.0,
            ..elastic
        })
        .unwrap(),
    );
    let moved = |v: &[f32]| v.iter().zip(&px).map(|(a, b)| (a - b).abs()).sum::<f32>();
    assert!(
        moved(&weak) < 0.5 * moved(warped),
        "α 4 moved as much as α 34"
    );
    let e = x
        .augment(&AugmentSpec {
            elastic_sigma: 0.0,
            ..elastic
        })
        .expect_err("σ 0")
        .to_string();
    assert!(e.contains("elastic_sigma"), "{e}");
    // All bounds 0: the identity (up to the contrast formula's rounding).
    let none = AugmentSpec {
        seed: 42,
        offset: 100,
        ..AugmentSpec::NONE
    };
    common::assert_close(
        "augment with zero bounds",
        &vals(&x.augment(&none).unwrap()),
        &px,
        1e-6,
        0.0,
    );
    let e = x
        .augment(&AugmentSpec {
            scale: 1.5,
            ..strong
        })
        .expect_err("scale ≥ 1")
        .to_string();
    assert!(e.contains("augment") && e.contains("scale"), "{e}");
}

#[test]
fn relu_sigmoid_and_backward() {
    for (i, shape) in elementwise_shapes().into_iter().enumerate() {
        // Spread wide enough to saturate the sigmoid, with exact zeros for relu's boundary.
        let mut xv = vals(&randn(&shape[..], 6.0, 30 + i as u64));
        xv.iter_mut().step_by(5).for_each(|v| *v = 0.0);
        let x = cpu_f32(xv, &shape[..]);
        let dy = randn(&shape[..], 1.0, 60 + i as u64);
        let y = uniform(&shape[..], 0.0, 1.0, 90 + i as u64); // a sigmoid output
        cross_check(
            &format!("relu/relu_backward {shape:?}"),
            Tol::EXACT,
            |dev| {
                let (x, dy) = (x.to_device(dev)?, dy.to_device(dev)?);
                Ok(vec![x.relu()?, grad_of(&x, &dy, |t| t.relu())?])
            },
        );
        cross_check(&format!("sigmoid {shape:?}"), Tol::EXP, |dev| {
            Ok(vec![x.to_device(dev)?.sigmoid()?])
        });
        cross_check(&format!("sigmoid_backward {shape:?}"), Tol::ARITH, |dev| {
            Ok(vec![grad_of(
                &y.to_device(dev)?,
                &dy.to_device(dev)?,
                |t| t.sigmoid(),
            )?])
        });
    }
    // Saturation: no NaN, and exactly 0 / 1 at the far ends on every device.
    let x = cpu_f32(vec![-200.0, -88.0, -30.0, 0.0, 30.0, 88.0, 200.0], [7]);
    for outs in cross_check("sigmoid saturation", Tol::EXP, |dev| {
        Ok(vec![x.to_device(dev)?.sigmoid()?])
    }) {
        let s = outs[0].f32s();
        assert!(
            s.iter().all(|v| (0.0..=1.0).contains(v)),
            "sigmoid out of [0, 1]: {s:?}"
        );
        assert_eq!((s[0], s[3], s[6]), (0.0, 0.5, 1.0));
    }
}

// ---------------------------------------------------------------------------------------------
// Broadcasting and reductions
// ---------------------------------------------------------------------------------------------

#[test]
fn add_broadcast_and_sum_to() {
    let cases: [(&[usize], &[usize]); 9] = [
        (&[257, 33], &[33]),            // a bias [C] over [N, C]
        (&[100, 7], &[1, 7]),           // the same with an explicit leading 1
        (&[2, 3, 7, 9], &[1, 3, 1, 1]), // a conv bias over NCHW
        (&[2, 3, 7, 9], &[3, 1, 1]),    // … given at a lower rank
        (&[33, 7], &[33, 1]),           // a column [R, 1] over [R, C]
        (&[2, 3, 7, 9], &[2, 1, 7, 1]),
        (&[2, 3, 7, 9], &[9]),
        (&[7, 100], &[7, 100]), // no broadcast at all
        (&[1], &[1]),
    ];
    for (i, (big, small)) in cases.into_iter().enumerate() {
        let (x, b) = (
            randn(big, 1.0, 10 + i as u64),
            randn(small, 1.0, 20 + i as u64),
        );
        cross_check(
            &format!("add_broadcast {big:?} + {small:?}"),
            Tol::ARITH,
            |dev| Ok(vec![x.to_device(dev)?.add(&b.to_device(dev)?)?]),
        );
        let terms = x.numel() / b.numel();
        cross_check(
            &format!("sum_to {big:?} -> {small:?}"),
            Tol::sum(terms),
            |dev| Ok(vec![x.to_device(dev)?.sum_to(small)?]),
        );
    }
}

#[test]
fn sum_rows_sum_cols_sum_mean() {
    let shapes: [&[usize]; 8] = [
        &[1, 1],
        &[1, 257],
        &[257, 1],
        &[7, 33],
        &[100, 257],
        &[257, 100],
        &[3, 7, 33],
        &[1000],
    ];
    for (i, shape) in shapes.into_iter().enumerate() {
        let x = randn(shape, 1.0, 40 + i as u64);
        let cols = *shape.last().unwrap();
        let rows = x.numel() / cols;
        cross_check(&format!("sum_rows {shape:?}"), Tol::sum(rows), |dev| {
            Ok(vec![column_sums(&x.to_device(dev)?)?])
        });
        cross_check(&format!("sum_cols {shape:?}"), Tol::sum(cols), |dev| {
            Ok(vec![x.to_device(dev)?.sum_dim(&[-1], false)?])
        });
        cross_check(&format!("sum/mean {shape:?}"), Tol::sum(x.numel()), |dev| {
            let x = x.to_device(dev)?;
            Ok(vec![x.sum()?, x.mean()?])
        });
    }
}

/// Enough elements that a 1-D dispatch of 256-thread workgroups exceeds the per-dimension
/// limit, so the kernels take their 2-D grid path. Built per device (the limit is the adapter's).
#[test]
fn dispatch_beyond_the_per_dimension_limit() {
    for dev in gpus() {
        let max_groups = dev
            .gpu_context()
            .unwrap()
            .summary()
            .max_compute_workgroups_per_dimension as usize;
        let n = (max_groups + 1) * 256 + 7;
        if n > 40_000_000 || 4 * n as u64 > dev.gpu_context().unwrap().max_tensor_bytes() {
            println!(
                "ops_cross_check: {dev}: skipping the 2-D dispatch check ({max_groups} groups per dimension)"
            );
            continue;
        }
        let x = uniform([n], -1.0, 1.0, 1);
        let f = |d: &Device| -> Result<Vec<Tensor>> {
            let x = x.to_device(d)?;
            let mut y = Tensor::full([n], 0.5, d)?;
            y.axpy_(2.0, &x)?;
            Ok(vec![y, x.scale(-1.0)?])
        };
        cross_check_on(
            &dev,
            &format!("axpy_/scale over {n} elements"),
            Tol::ARITH,
            &f,
        );

        // Row-per-workgroup kernels past the limit: sum_cols, softmax, softmax_backward.
        let rows = max_groups + 3;
        let (x, dy) = (randn([rows, 3], 2.0, 2), randn([rows, 3], 1.0, 3));
        let y = x.softmax(-1).unwrap();
        let what = format!("over {rows} rows");
        cross_check_on(&dev, &format!("sum_cols {what}"), Tol::sum(3), &|d| {
            Ok(vec![x.to_device(d)?.sum_dim(&[-1], false)?])
        });
        cross_check_on(&dev, &format!("softmax {what}"), Tol::EXP, &|d| {
            Ok(vec![x.to_device(d)?.softmax(-1)?])
        });
        cross_check_on(
            &dev,
            &format!("softmax_backward {what}"),
            Tol::sum(3),
            &|d| Ok(vec![dy.to_device(d)?.softmax_backward(&y.to_device(d)?)?]),
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Softmax and cross-entropy
// ---------------------------------------------------------------------------------------------

/// Logits with ±80 entries: exp(160) overflows f32, so only the max-subtracted form survives.
fn large_logits() -> Tensor {
    #[rustfmt::skip]
    let v = vec![
        80.0, -80.0, 0.0, 80.0, 79.5, -80.0, 1.0,
        80.0, 80.0, 80.0, 80.0, 80.0, 80.0, 80.0,
        -80.0, -80.0, -80.0, -80.0, -80.0, -80.0, -80.0,
        -80.0, 80.0, -80.0, -80.0, -80.0, -80.0, -79.0,
    ];
    cpu_f32(v, [4, 7])
}

fn assert_finite(what: &str, outs: &[Vec<Out>]) {
    for (d, outs) in outs.iter().enumerate() {
        for (o, out) in outs.iter().enumerate() {
            if let Data::F32(v) = &out.data {
                assert!(
                    v.iter().all(|x| x.is_finite()),
                    "{what}: device #{d} (0 = CPU), output {o} has NaN/inf: {v:?}"
                );
            }
        }
    }
}

#[test]
fn softmax_and_backward() {
    let shapes: [[usize; 2]; 8] = [
        [1, 1],
        [7, 1],
        [1, 257],
        [33, 7],
        [100, 33],
        [7, 257],
        [257, 100],
        [3, 64],
    ];
    let mut inputs: Vec<Tensor> = shapes
        .iter()
        .enumerate()
        .map(|(i, s)| randn(*s, 3.0, 70 + i as u64))
        .collect();
    inputs.push(large_logits());
    inputs.push(randn([33, 100], 30.0, 77)); // wide logits: most probabilities underflow
    for (i, x) in inputs.iter().enumerate() {
        let shape = x.dims().to_vec();
        let outs = cross_check(&format!("softmax {shape:?}"), Tol::EXP, |dev| {
            Ok(vec![x.to_device(dev)?.softmax(-1)?])
        });
        assert_finite(&format!("softmax {shape:?}"), &outs);
        let cols = shape[1];
        for (d, outs) in outs.iter().enumerate() {
            for (r, row) in outs[0].f32s().chunks(cols).enumerate() {
                let s: f32 = row.iter().sum();
                assert!(
                    (s - 1.0).abs() < 1e-4,
                    "softmax {shape:?} device #{d} row {r} sums to {s}"
                );
            }
        }
        // Backward with the same y (the CPU's forward) on every device.
        let y = x.softmax(-1).unwrap();
        let dy = randn(&shape[..], 1.0, 170 + i as u64);
        let outs = cross_check(
            &format!("softmax_backward {shape:?}"),
            Tol::sum(cols),
            |dev| {
                Ok(vec![
                    dy.to_device(dev)?.softmax_backward(&y.to_device(dev)?)?,
                ])
            },
        );
        assert_finite(&format!("softmax_backward {shape:?}"), &outs);
    }
}

#[test]
fn softmax_cross_entropy_and_backward() {
    let shapes: [(usize, usize); 6] = [(1, 1), (7, 10), (33, 257), (100, 7), (257, 33), (1, 100)];
    let mut cases: Vec<(Tensor, Tensor)> = shapes
        .iter()
        .enumerate()
        .map(|(i, &(r, c))| {
            (
                randn([r, c], 3.0, 110 + i as u64),
                labels(r, c, 120 + i as u64),
            )
        })
        .collect();
    // Large logits, with labels on a +80, a -80 (loss ≈ 160) and an all-equal row.
    cases.push((
        large_logits(),
        Tensor::from_vec(vec![0u32, 3, 2, 0], [4], &Device::Cpu).unwrap(),
    ));
    for (x, t) in &cases {
        let shape = x.dims().to_vec();
        let outs = cross_check(
            &format!("softmax_cross_entropy {shape:?}"),
            Tol::EXP,
            |dev| {
                let (loss, probs) = x
                    .to_device(dev)?
                    .softmax_cross_entropy(&t.to_device(dev)?)?;
                Ok(vec![loss, probs])
            },
        );
        assert_finite(&format!("softmax_cross_entropy {shape:?}"), &outs);
        // Backward from the same probabilities on every device.
        let (_, probs) = x.softmax_cross_entropy(t).unwrap();
        for dout in [1.0, 0.37] {
            cross_check(
                &format!("softmax_cross_entropy_backward {shape:?} dout={dout}"),
                Tol::ARITH,
                |dev| {
                    Ok(vec![probs.to_device(dev)?.softmax_cross_entropy_backward(
                        &t.to_device(dev)?,
                        dout,
                    )?])
                },
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Convolution layout: im2col / col2im / transpose
// ---------------------------------------------------------------------------------------------

#[test]
fn im2col_col2im_geometries() {
    // (input NCHW, kh, kw, stride, pad)
    let cases: [([usize; 4], usize, usize, usize, usize); 9] = [
        ([1, 1, 5, 5], 3, 3, 1, 0),
        ([2, 3, 7, 9], 3, 3, 1, 1),
        ([2, 3, 7, 9], 5, 5, 2, 2),
        ([1, 3, 8, 8], 2, 2, 2, 0),
        ([2, 1, 9, 7], 3, 3, 2, 1),
        ([1, 1, 7, 9], 3, 3, 1, 2),
        ([1, 3, 6, 10], 2, 5, 1, 0), // non-square kernel
        ([1, 2, 4, 4], 5, 5, 3, 2),  // kernel larger than the unpadded input
        ([2, 3, 7, 9], 2, 2, 1, 0),
    ];
    for (i, (shape, kh, kw, s, p)) in cases.into_iter().enumerate() {
        let x = randn(shape, 1.0, 130 + i as u64);
        let g = x.conv_geom(kh, kw, s, p).unwrap();
        let col = randn([g.col_rows(), g.col_cols()], 1.0, 140 + i as u64);
        let what = format!("{shape:?} kernel {kh}x{kw} stride {s} pad {p}");
        cross_check(&format!("im2col {what}"), Tol::EXACT, |dev| {
            Ok(vec![x.to_device(dev)?.im2col(kh, kw, s, p)?])
        });
        // col2im adds up to ⌈kh/s⌉·⌈kw/s⌉ overlapping terms per pixel, in another order.
        let terms = kh.div_ceil(s) * kw.div_ceil(s);
        cross_check(&format!("col2im {what}"), Tol::sum(terms), |dev| {
            let back = x.to_device(dev)?.im2col(kh, kw, s, p)?.col2im(&g)?;
            Ok(vec![col.to_device(dev)?.col2im(&g)?, back])
        });
    }
}

#[test]
fn transpose_last2_ranks_2_to_4() {
    let shapes: [&[usize]; 7] = [
        &[7, 33],
        &[1, 257],
        &[257, 1],
        &[100, 100],
        &[3, 7, 9],
        &[2, 3, 5, 7],
        &[2, 1, 33, 100],
    ];
    for (i, shape) in shapes.into_iter().enumerate() {
        let x = randn(shape, 1.0, 150 + i as u64);
        let outs = cross_check(&format!("transpose_last2 {shape:?}"), Tol::EXACT, |dev| {
            let t = x.to_device(dev)?.transpose_last2()?;
            let back = t.transpose_last2()?;
            Ok(vec![t, back])
        });
        let mut swapped = shape.to_vec();
        swapped.swap(shape.len() - 2, shape.len() - 1);
        assert_eq!(outs[0][0].shape, swapped);
        assert_eq!(
            outs[0][1].f32s(),
            vals(&x),
            "transposing twice is the identity"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Pooling
// ---------------------------------------------------------------------------------------------

/// (input NCHW, window h, window w, stride, pad)
const POOLS: [([usize; 4], usize, usize, usize, usize); 7] = [
    ([2, 3, 8, 8], 2, 2, 2, 0), // the classic
    ([2, 3, 7, 9], 3, 3, 2, 1), // overlapping, padded, odd sizes
    ([1, 2, 7, 9], 3, 3, 1, 0), // heavy overlap
    ([1, 1, 5, 6], 2, 3, 1, 1), // non-square window
    ([2, 1, 9, 7], 5, 5, 3, 2),
    ([1, 3, 33, 7], 2, 2, 2, 0), // odd size: the last row/column is dropped
    ([1, 1, 1, 1], 1, 1, 1, 0),
];

#[test]
fn max_pool2d_without_ties_exact_indices_and_backward() {
    for (i, (shape, ph, pw, s, p)) in POOLS.into_iter().enumerate() {
        let x = distinct(&shape, 160 + i as u64);
        let g = x.pool_geom(ph, pw, s, p).unwrap();
        let what = format!("max_pool2d {shape:?} window {ph}x{pw} stride {s} pad {p}");
        let outs = cross_check(&what, Tol::EXACT, |dev| {
            let (out, idx) = x.to_device(dev)?.max_pool2d(ph, pw, s, p)?;
            Ok(vec![out, idx])
        });
        let (want_out, want_idx) = naive_max_pool(&vals(&x), &g);
        assert_eq!(
            outs[0][0].f32s(),
            want_out,
            "{what}: CPU values vs the definition"
        );
        assert_eq!(
            outs[0][1].u32s(),
            want_idx,
            "{what}: CPU indices vs the definition"
        );

        let dy = randn([g.n, g.c, g.out_h(), g.out_w()], 1.0, 170 + i as u64);
        let terms = ph.div_ceil(s) * pw.div_ceil(s); // windows an input pixel can win
        cross_check(&format!("{what} backward"), Tol::sum(terms), |dev| {
            let (_, idx) = x.to_device(dev)?.max_pool2d(ph, pw, s, p)?;
            Ok(vec![dy.to_device(dev)?.max_pool2d_backward(&idx, &g)?])
        });
    }
}

#[test]
fn max_pool2d_with_ties_first_max_wins_everywhere() {
    for (i, (shape, ph, pw, s, p)) in POOLS.into_iter().enumerate() {
        let constant = Tensor::full(shape, -3.0, &Device::Cpu).unwrap();
        for x in [with_ties(&shape, 180 + i as u64), constant] {
            let g = x.pool_geom(ph, pw, s, p).unwrap();
            let what =
                format!("max_pool2d with ties {shape:?} window {ph}x{pw} stride {s} pad {p}");
            let outs = cross_check(&what, Tol::EXACT, |dev| {
                let (out, idx) = x.to_device(dev)?.max_pool2d(ph, pw, s, p)?;
                Ok(vec![out, idx])
            });
            let (want_out, want_idx) = naive_max_pool(&vals(&x), &g);
            for (d, outs) in outs.iter().enumerate() {
                assert_eq!(
                    outs[0].f32s(),
                    want_out,
                    "{what}: device #{d} (0 = CPU) values"
                );
                assert_eq!(
                    outs[1].u32s(),
                    want_idx,
                    "{what}: device #{d} (0 = CPU): the first maximum must win"
                );
            }
            let dy = randn([g.n, g.c, g.out_h(), g.out_w()], 1.0, 190 + i as u64);
            cross_check(&format!("{what} backward"), Tol::sum(ph * pw), |dev| {
                let (_, idx) = x.to_device(dev)?.max_pool2d(ph, pw, s, p)?;
                Ok(vec![dy.to_device(dev)?.max_pool2d_backward(&idx, &g)?])
            });
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Argmax, accuracy, dropout, clone and reshape
// ---------------------------------------------------------------------------------------------

#[test]
fn argmax_rows_and_count_correct() {
    let shapes: [(usize, usize); 7] = [
        (1, 1),
        (7, 1),
        (1, 257),
        (33, 7),
        (100, 10),
        (300, 33),
        (257, 100),
    ];
    for (i, (rows, cols)) in shapes.into_iter().enumerate() {
        for x in [
            randn([rows, cols], 1.0, 200 + i as u64),
            with_ties(&[rows, cols], 210 + i as u64),
        ] {
            // Half the labels agree with the argmax, so the count is neither 0 nor `rows`.
            let am = x.argmax_rows().unwrap().to_vec::<u32>().unwrap();
            let mut t = labels(rows, cols, 220 + i as u64).to_vec::<u32>().unwrap();
            t.iter_mut().zip(&am).step_by(2).for_each(|(t, &a)| *t = a);
            let t = Tensor::from_vec(t, [rows], &Device::Cpu).unwrap();
            let outs = cross_check(
                &format!("argmax_rows/count_correct [{rows}, {cols}]"),
                Tol::EXACT,
                |dev| {
                    let x = x.to_device(dev)?;
                    Ok(vec![x.argmax_rows()?, x.count_correct(&t.to_device(dev)?)?])
                },
            );
            // The CPU itself against the definition: the first maximum of each row.
            let xv = vals(&x);
            let first_max: Vec<u32> = xv
                .chunks(cols)
                .map(|r| {
                    r.iter()
                        .position(|&v| v == r.iter().copied().fold(f32::MIN, f32::max))
                        .unwrap() as u32
                })
                .collect();
            assert_eq!(outs[0][0].u32s(), first_max);
            let correct = first_max
                .iter()
                .zip(t.to_vec::<u32>().unwrap())
                .filter(|(a, t)| **a == *t)
                .count() as u32;
            assert_eq!(outs[0][1].u32s(), [correct]);
        }
    }
}

#[test]
fn dropout_mask_identical_on_every_device() {
    let spec = |ratio: f32, scale: f32, seed: u32, offset: u32| DropoutSpec {
        ratio,
        scale,
        seed,
        offset,
    };
    let specs = [
        spec(0.5, 2.0, 0, 0),
        spec(0.1, 1.0 / 0.9, 12345, 1000),
        spec(0.9, 10.0, u32::MAX, u32::MAX - 100), // the counter wraps around
        spec(0.0, 1.0, 7, 0),                      // keeps everything
        spec(0.999, 1.0, 99, 3),                   // drops nearly everything
    ];
    let shapes: [&[usize]; 3] = [&[1], &[257, 33], &[7, 100]];
    for spec in &specs {
        for shape in shapes {
            cross_check(
                &format!("dropout_mask {shape:?} {spec:?}"),
                Tol::EXACT,
                |dev| Ok(vec![Tensor::dropout_mask(shape, spec, dev)?]),
            );
        }
    }
    // The kept fraction is 1 − ratio: over 65536 draws its standard deviation is ≤ 0.002, so
    // 0.01 is a 5σ bound. Checked on every device (the masks are equal anyway).
    for ratio in [0.1, 0.5, 0.8] {
        let spec = spec(ratio, 1.0 / (1.0 - ratio), 31337, 0);
        for outs in cross_check(
            &format!("dropout_mask fraction ratio={ratio}"),
            Tol::EXACT,
            |dev| Ok(vec![Tensor::dropout_mask([256, 256], &spec, dev)?]),
        ) {
            let m = outs[0].f32s();
            assert!(
                m.iter().all(|&v| v == 0.0 || v == spec.scale),
                "mask values must be 0 or scale"
            );
            let kept = m.iter().filter(|&&v| v != 0.0).count() as f32 / m.len() as f32;
            assert!(
                (kept - (1.0 - ratio)).abs() < 0.01,
                "ratio {ratio}: kept fraction {kept}"
            );
        }
    }
}

#[test]
fn try_clone_and_reshape() {
    let x = randn([33, 7, 3], 1.0, 230);
    let t = labels(33, 7, 231);
    let outs = cross_check("try_clone", Tol::EXACT, |dev| {
        let x = x.to_device(dev)?;
        let clone = x.try_clone()?;
        let mut original = x;
        original.fill_(-1.0)?; // the clone must not see this
        let labels_clone = t.to_device(dev)?.try_clone()?;
        Ok(vec![clone, original, labels_clone])
    });
    for outs in &outs {
        assert_eq!(outs[0].f32s(), vals(&x), "a clone is a deep copy");
        assert_eq!(outs[2].u32s(), t.to_vec::<u32>().unwrap());
    }
    cross_check("reshape", Tol::sum(33), |dev| {
        let r = x.to_device(dev)?.reshape([33, 21])?;
        assert!(
            r.try_clone()?.reshape([5, 5]).is_err(),
            "reshape must keep the element count"
        );
        let sums = column_sums(&r)?;
        Ok(vec![r.reshape([7, 99])?, sums])
    });
}

// ---------------------------------------------------------------------------------------------
// Long reductions
// ---------------------------------------------------------------------------------------------

/// Sums and products longer than one GPU thread may loop. Lavapipe silently stops every
/// invocation's loops after 65,535 iterations in total, so a kernel that walked a 78,400-row
/// column in one thread returned the sum of its first 65,535 rows — which is what the conv
/// weight gradients of a batch of 100 28×28 images were, before these ops learned to split.
#[test]
fn reductions_longer_than_a_thread_may_loop() {
    // sum_rows: two stages (≤ 1024² rows) and three.
    for shape in [[100_000, 3], [1_100_000, 1]] {
        let x = randn(shape, 1.0, 70);
        cross_check(&format!("sum_rows {shape:?}"), Tol::sum(shape[0]), |dev| {
            Ok(vec![column_sums(&x.to_device(dev)?)?])
        });
    }
    // sum_cols with rows cut into blocks of 262,144, and the whole-tensor sum past 256·65,535.
    let x = randn([2, 600_000], 1.0, 78);
    cross_check("sum_cols [2, 600000]", Tol::sum(600_000), |dev| {
        Ok(vec![x.to_device(dev)?.sum_dim(&[-1], false)?])
    });
    let x = randn([17_000_000], 1.0, 79);
    cross_check("sum/mean over 17,000,000", Tol::sum(17_000_000), |dev| {
        let x = x.to_device(dev)?;
        Ok(vec![x.sum()?, x.mean()?])
    });
    // sum_to with 70,000 and 80,000 elements per output, reduced over 1 and 3 dimensions.
    for (shape, to) in [
        (vec![70_000, 3], vec![1, 3]),
        (vec![40, 3, 50, 40], vec![1, 3, 1, 1]),
    ] {
        let x = randn(shape.clone(), 1.0, 71);
        let per = x.numel() / to.iter().product::<usize>();
        cross_check(
            &format!("sum_to {shape:?} → {to:?}"),
            Tol::sum(per),
            |dev| Ok(vec![x.to_device(dev)?.sum_to(&to)?]),
        );
    }
    // Matmul with K = 70,000 (split-K), every transpose and both kernels, with and without
    // accumulation into C, in f32 and f16.
    let (m, n, k) = (5, 7, 70_000);
    for (ta, tb) in FLAGS {
        let (sa, sb) = operand_shapes(m, n, k, ta, tb);
        let (a, b, c0) = (
            randn(sa, 1.0, 72),
            randn(sb, 1.0, 73),
            randn([m, n], 1.0, 74),
        );
        let what = format!("matmul m={m} n={n} k={k} trans_a={ta} trans_b={tb}");
        cross_check_matmul(&what, Tol::matmul(k, 1.0), |dev| {
            Ok(vec![a.to_device(dev)?.matmul_t(
                &b.to_device(dev)?,
                ta,
                tb,
            )?])
        });
        cross_check_matmul(
            &format!("gemm_ beta=-2 {what}"),
            Tol::matmul(k, 3.0),
            |dev| {
                let mut c = c0.to_device(dev)?;
                c.gemm_(&a.to_device(dev)?, &b.to_device(dev)?, ta, tb, 1.0, -2.0)?;
                Ok(vec![c])
            },
        );
        // f16 operands, f32 partials: one f16 rounding of a ~265-sized result (≤ 0.125).
        let (ah, bh) = (
            a.to_dtype(DType::F16).unwrap(),
            b.to_dtype(DType::F16).unwrap(),
        );
        let tol = Tol {
            atol: 0.25,
            rtol: 1e-3,
        };
        cross_check_matmul(&format!("f16 {what}"), tol, |dev| {
            let c = ah.to_device(dev)?.matmul_t(&bh.to_device(dev)?, ta, tb)?;
            Ok(vec![c.to_dtype(DType::F32)?])
        });
    }
    // The conv backward that exposed it: N·OH·OW = 90·28·28 = 70,560 rows.
    let (x, w) = (
        randn([90, 2, 28, 28], 1.0, 75),
        randn([3, 2, 3, 3], 1.0, 76),
    );
    let dout = randn([90, 3, 28, 28], 1.0, 77);
    cross_check_matmul(
        "conv2d_backward over 70,560 rows",
        Tol::sum(70_560 * 3),
        |dev| {
            let (dx, dw, db) = x.to_device(dev)?.conv2d_backward(
                &w.to_device(dev)?,
                &dout.to_device(dev)?,
                1,
                1,
            )?;
            Ok(vec![dx, dw, db])
        },
    );
}

/// A batch whose column matrix is larger than one storage binding (300·784·144 floats,
/// 135 MB, over lavapipe's 128 MiB) runs on a GPU in chunks of images joined with `cat`:
/// output and all three gradients as on the CPU. (On an adapter with larger bindings the
/// batch fits and runs whole: the same comparison.)
#[test]
fn convolution_larger_than_a_binding_runs_in_chunks() {
    let (x, w, b) = (
        randn([300, 16, 28, 28], 1.0, 80),
        randn([16, 16, 3, 3], 1.0, 81),
        randn([16], 1.0, 82),
    );
    let dout = randn([300, 16, 28, 28], 1.0, 83);
    cross_check(
        "conv2d over 135 MB of columns",
        Tol::sum(300 * 784),
        |dev| {
            let xs = x.to_device(dev)?.requiring_grad()?;
            let ws = w.to_device(dev)?.requiring_grad()?;
            let bs = b.to_device(dev)?.requiring_grad()?;
            let out = xs.conv2d(&ws, &bs, 1, 1)?;
            out.backward_with(&dout.to_device(dev)?)?;
            let grad = |t: &Tensor| {
                t.grad()
                    .ok_or_else(|| wgnn::Error::invalid("test", "no gradient"))
            };
            Ok(vec![out.clone(), grad(&xs)?, grad(&ws)?, grad(&bs)?])
        },
    );
}

/// Fused dropout (`Tensor::dropout`: the mask regenerated from its hash in the forward and the
/// backward kernels) equals `x * dropout_mask` and its gradient `g * mask`, exactly, on the
/// CPU and every GPU, for both the inverted and the book's scaling.
#[test]
fn fused_dropout_equals_the_mask_product() {
    let mut devs = vec![Device::Cpu];
    devs.extend(gpus());
    for dev in devs {
        for scale in [1.0f32, 1.0 / 0.7] {
            let spec = DropoutSpec {
                ratio: 0.3,
                scale,
                seed: 7,
                offset: 1000,
            };
            let x = randn([37, 11], 1.0, 3).to_device(&dev).unwrap();
            let g = randn([37, 11], 1.0, 4).to_device(&dev).unwrap();
            let mask = Tensor::dropout_mask([37, 11], &spec, &dev).unwrap();
            let xl = x.clone().requiring_grad().unwrap();
            let y = xl.dropout(&spec).unwrap();
            y.backward_with(&g).unwrap();
            let want_y = x.mul(&mask).unwrap().to_vec::<f32>().unwrap();
            let want_g = g.mul(&mask).unwrap().to_vec::<f32>().unwrap();
            assert_eq!(y.to_vec::<f32>().unwrap(), want_y, "dropout on {dev}");
            assert_eq!(
                xl.grad().unwrap().to_vec::<f32>().unwrap(),
                want_g,
                "dropout gradient on {dev}"
            );
        }
    }
}

/// The reductions with subgroup operations (sum_cols in one block and in blocks of 262,144,
/// the whole-tensor sum, the softmax-CE mean, count_correct) equal the CPU, and so do the
/// workgroup-tree kernels they replace, on every adapter (the subgroup path where it exists).
#[test]
fn subgroup_and_tree_reductions_match_the_cpu() {
    let rows = randn([37, 1000], 1.0, 90);
    let long = randn([2, 600_000], 1.0, 91);
    let logits = randn([1000, 10], 2.0, 92);
    let labels = Tensor::from_vec(
        (0..1000u32)
            .map(|i| (i * 7 + i / 3) % 10)
            .collect::<Vec<_>>(),
        [1000],
        &Device::Cpu,
    )
    .unwrap();
    let f = |dev: &Device| -> Result<Vec<Tensor>> {
        let (logits, labels) = (logits.to_device(dev)?, labels.to_device(dev)?);
        Ok(vec![
            rows.to_device(dev)?.sum_dim(&[-1], false)?,
            long.to_device(dev)?.sum_dim(&[-1], false)?,
            rows.to_device(dev)?.sum()?,
            logits.softmax_cross_entropy(&labels)?.0,
            logits.count_correct(&labels)?,
        ])
    };
    for dev in common::fresh_gpus() {
        let ctx = dev.gpu_context().expect("a GPU").clone();
        let mut paths = vec![false];
        match ctx.set_subgroups(true) {
            Ok(()) => paths.push(true),
            Err(e) => eprintln!("{dev}: subgroup reductions not checked here: {e}"),
        }
        for sg in paths {
            ctx.set_subgroups(sg).unwrap();
            let what = format!("reductions with subgroups {sg}");
            cross_check_on(&dev, &what, Tol::sum(600_000), &f);
        }
    }
}

/// GEMM autotune (opt-in) times every candidate once per shape class, keeps the fastest, and
/// the autotuned matmul and convolution (forward, input and weight gradients) still equal the
/// CPU; running them again tunes nothing new.
#[test]
fn autotuned_gemms_match_the_cpu_and_tune_once() {
    let a = randn([300, 200], 1.0, 95);
    let b = randn([200, 130], 1.0, 96);
    let x = randn([4, 3, 12, 12], 1.0, 97);
    let w = randn([8, 3, 3, 3], 0.5, 98);
    let bias = randn([8], 0.5, 99);
    let dy = randn([4, 8, 12, 12], 1.0, 100);
    let f = |dev: &Device| -> Result<Vec<Tensor>> {
        let (x, w) = (x.to_device(dev)?, w.to_device(dev)?);
        let y = x.conv2d(&w, &bias.to_device(dev)?, 1, 1)?;
        let (dx, dw, db) = x.conv2d_backward(&w, &dy.to_device(dev)?, 1, 1)?;
        let c = a
            .to_device(dev)?
            .matmul_t(&b.to_device(dev)?, false, false)?;
        Ok(vec![c, y, dx, dw, db])
    };
    for dev in common::fresh_gpus() {
        let ctx = dev.gpu_context().expect("a GPU").clone();
        ctx.set_autotune(true);
        cross_check_on(&dev, "autotuned GEMMs", Tol::matmul(4 * 144, 1.0), &f);
        let tuned = ctx.tuned_gemms();
        let classes: Vec<&str> = tuned.iter().map(|t| t.0.as_str()).collect();
        for mode in [
            "matmul",
            "conv forward",
            "conv input gradient",
            "conv weight gradient",
        ] {
            assert!(
                classes.iter().any(|c| c.starts_with(&format!("{mode} "))),
                "{dev}: no autotuned {mode} in {classes:?}"
            );
        }
        assert!(
            tuned.iter().all(|t| t.2.is_finite() && t.2 > 0.0),
            "{tuned:?}"
        );
        cross_check_on(&dev, "autotuned GEMMs again", Tol::matmul(4 * 144, 1.0), &f);
        assert_eq!(
            ctx.tuned_gemms(),
            tuned,
            "{dev}: the second run tuned again"
        );
        ctx.set_autotune(false);
    }
}

/// The mean softmax-CE backward reads its upstream gradient on the device (one kernel): with a
/// seed of 2.5 the logits' gradient is 2.5 × (probs − onehot) / rows, as on the CPU.
#[test]
fn softmax_ce_backward_scales_by_the_upstream_gradient() {
    let logits = randn([33, 10], 2.0, 101);
    let labels = Tensor::from_vec(
        (0..33u32).map(|i| (i * 3) % 10).collect::<Vec<_>>(),
        [33],
        &Device::Cpu,
    )
    .unwrap();
    let outs = cross_check("softmax-CE backward, seed 2.5", Tol::EXP, |dev| {
        let x = logits.to_device(dev)?.requiring_grad()?;
        let (loss, probs) = x.softmax_cross_entropy(&labels.to_device(dev)?)?;
        loss.backward_with(&Tensor::from_vec(vec![2.5f32], [1], dev)?)?;
        let grad = x.grad().expect("a gradient");
        Ok(vec![grad, probs])
    });
    // The CPU's gradient is 2.5 / 33 × (probs − onehot).
    let (Data::F32(g), Data::F32(p)) = (&outs[0][0].data, &outs[0][1].data) else {
        panic!("f32 outputs");
    };
    for (i, (&g, &p)) in g.iter().zip(p).enumerate() {
        let hot = if (i % 10) as u32 == ((i / 10) as u32 * 3) % 10 {
            1.0
        } else {
            0.0
        };
        let want = 2.5 / 33.0 * (p - hot);
        assert!((g - want).abs() <= 1e-6, "element {i}: {g} vs {want}");
    }
}
