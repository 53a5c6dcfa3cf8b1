//! Autograd: every differentiable op's backward rule against central differences of its
//! forward, on the CPU and on every GPU adapter; and the graph semantics PyTorch users rely
//! on (accumulation into leaves, `no_grad`, `detach`, `backward_with`, one walk per graph).
//!
//! Method (as `grad_check.rs`): inputs are leaves requiring gradients, the scalar objective is
//! `L = Σ f(inputs) ⊙ R` for a fixed random `R`, built with ops so `L.backward()` gives the
//! analytic gradients; the numerical ones are central differences of `L` summed in f64 on the
//! host from the f32 outputs, with the denominator taken from the f32 values actually used.
//! Tolerances by class (u = 2⁻²⁴):
//! - affine in each element (matmul, add, sub, mul, scale, the broadcasts and reductions,
//!   reshape, transpose, im2col/col2im, conv2d): truncation is exactly 0, so h = 0.5 and only
//!   rounding is left, ≈ √k·u·|Y|/(2h) ≲ 1e-6 for k ≲ 100 outputs of size ≲ 10: atol 1e-4,
//!   rtol 1e-3 (the analytic side's own f32 rounding);
//! - piecewise affine (relu, leaky-relu, max-pool): inputs kept ≥ 0.1 from every kink, h = 0.05, so no
//!   perturbation crosses one and the affine bounds hold;
//! - smooth (sigmoid, tanh, exp, log, recip, sqrt, softmax, softmax-CE): h = 5e-3 with |f'''| ≲ 50 on the
//!   inputs used (recip on [0.5, 2] is the worst: 6/x⁴ ≤ 96), truncation h²/6·|f'''| ≲ 4e-4,
//!   rounding ≲ √k·u·10/(2h) ≈ 6e-5: atol 1e-3, rtol 1e-2.
//!
//! On the CPU every element is checked; on a GPU a seeded sample of 12 per input.

mod common;

use wgnn::autograd::{is_grad_enabled, no_grad};
use wgnn::ops::Kernels;
use wgnn::rng::SplitMix64;
use wgnn::{DType, Device, Result, Tensor};

const GPU_SAMPLES: usize = 12;

#[derive(Clone, Copy)]
struct Fd {
    h: f32,
    atol: f64,
    rtol: f64,
}

const AFFINE: Fd = Fd {
    h: 0.5,
    atol: 1e-4,
    rtol: 1e-3,
};
const KINKED: Fd = Fd {
    h: 0.05,
    atol: 1e-4,
    rtol: 1e-3,
};
const SMOOTH: Fd = Fd {
    h: 5e-3,
    atol: 1e-3,
    rtol: 1e-2,
};

fn randn(n: usize, std: f32, seed: u64) -> Vec<f32> {
    let mut rng = SplitMix64::new(seed);
    (0..n).map(|_| std * rng.next_normal() as f32).collect()
}

/// Values in `[lo, hi]`, uniformly.
fn uniform(n: usize, lo: f32, hi: f32, seed: u64) -> Vec<f32> {
    let mut rng = SplitMix64::new(seed);
    (0..n)
        .map(|_| lo + (hi - lo) * rng.next_f64() as f32)
        .collect()
}

/// Values at least `gap` away from 0 (for relu): ±[gap, gap + 2].
fn away_from_zero(n: usize, gap: f32, seed: u64) -> Vec<f32> {
    let mut rng = SplitMix64::new(seed);
    (0..n)
        .map(|_| {
            let v = gap + 2.0 * rng.next_f64() as f32;
            if rng.next_f64() < 0.5 { -v } else { v }
        })
        .collect()
}

fn pick(n: usize, dev: &Device, seed: u64) -> Vec<usize> {
    let mut all: Vec<usize> = (0..n).collect();
    if !dev.is_gpu() || n <= GPU_SAMPLES {
        return all;
    }
    let mut rng = SplitMix64::new(seed);
    for i in 0..GPU_SAMPLES {
        let j = i + rng.below((n - i) as u64) as usize;
        all.swap(i, j);
    }
    all.truncate(GPU_SAMPLES);
    all
}

/// Checks the autograd gradient of every input of `f` against central differences.
fn check_op(
    what: &str,
    dev: &Device,
    inputs: &[(Vec<f32>, Vec<usize>)],
    fd: Fd,
    f: impl Fn(&[Tensor]) -> Result<Tensor>,
) {
    let what = format!("{what} on {dev}");
    let leaves: Vec<Tensor> = inputs
        .iter()
        .map(|(v, s)| {
            Tensor::from_slice(v, s.clone(), dev)
                .and_then(Tensor::requiring_grad)
                .unwrap()
        })
        .collect();
    let y = f(&leaves).unwrap_or_else(|e| panic!("{what}: forward: {e}"));
    let r = randn(y.numel(), 1.0, 99);
    let rt = Tensor::from_slice(&r, y.dims().to_vec(), dev).unwrap();
    y.mul(&rt).unwrap().sum().unwrap().backward().unwrap();
    let objective = |vals: &[Vec<f32>]| -> f64 {
        let _g = no_grad();
        let ts: Vec<Tensor> = vals
            .iter()
            .zip(inputs)
            .map(|(v, (_, s))| Tensor::from_slice(v, s.clone(), dev).unwrap())
            .collect();
        f(&ts)
            .unwrap()
            .to_vec::<f32>()
            .unwrap()
            .iter()
            .zip(&r)
            .map(|(&a, &b)| a as f64 * b as f64)
            .sum()
    };
    let values: Vec<Vec<f32>> = inputs.iter().map(|(v, _)| v.clone()).collect();
    for (k, leaf) in leaves.iter().enumerate() {
        let grad = leaf
            .grad()
            .unwrap_or_else(|| panic!("{what}: input {k} got no gradient"));
        assert_eq!(grad.dims(), leaf.dims(), "{what}: input {k} gradient shape");
        let ana = grad.to_vec::<f32>().unwrap();
        for j in pick(ana.len(), dev, 7 + k as u64) {
            let mut vals = values.clone();
            let v = values[k][j];
            vals[k][j] = v + fd.h;
            let plus = objective(&vals);
            vals[k][j] = v - fd.h;
            let minus = objective(&vals);
            let num = (plus - minus) / ((v + fd.h) as f64 - (v - fd.h) as f64);
            let a = ana[j] as f64;
            let tol = fd.atol + fd.rtol * a.abs();
            assert!(
                (num - a).abs() <= tol,
                "{what}: input {k} element {j}: autograd {a:e}, numerical {num:e} (tol {tol:e})"
            );
        }
    }
}

#[test]
fn matmul_every_transpose() {
    for dev in common::all_devices() {
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            let a_shape = if ta { vec![4, 3] } else { vec![3, 4] };
            let b_shape = if tb { vec![5, 4] } else { vec![4, 5] };
            check_op(
                &format!("matmul(ta {ta}, tb {tb})"),
                &dev,
                &[(randn(12, 1.0, 1), a_shape), (randn(20, 1.0, 2), b_shape)],
                AFFINE,
                |t| t[0].matmul_t(&t[1], ta, tb),
            );
        }
    }
}

#[test]
fn elementwise_and_broadcast() {
    for dev in common::all_devices() {
        let a = (randn(24, 1.0, 3), vec![2, 3, 4]);
        let b = (randn(24, 1.0, 4), vec![2, 3, 4]);
        check_op("add", &dev, &[a.clone(), b.clone()], AFFINE, |t| {
            t[0].add(&t[1])
        });
        check_op("sub", &dev, &[a.clone(), b.clone()], AFFINE, |t| {
            t[0].sub(&t[1])
        });
        check_op("mul", &dev, &[a.clone(), b.clone()], AFFINE, |t| {
            t[0].mul(&t[1])
        });
        check_op("scale", &dev, std::slice::from_ref(&a), AFFINE, |t| {
            t[0].scale(-1.5)
        });
        for small in [vec![4], vec![3, 1], vec![2, 1, 4], vec![1]] {
            let n = small.iter().product();
            let s = (randn(n, 1.0, 5), small.clone());
            check_op(
                &format!("add_broadcast {small:?}"),
                &dev,
                &[a.clone(), s.clone()],
                AFFINE,
                |t| t[0].add(&t[1]),
            );
            check_op(
                &format!("sub_broadcast {small:?}"),
                &dev,
                &[a.clone(), s.clone()],
                AFFINE,
                |t| t[0].sub(&t[1]),
            );
            check_op(
                &format!("mul_broadcast {small:?}"),
                &dev,
                &[a.clone(), s.clone()],
                AFFINE,
                |t| t[0].mul(&t[1]),
            );
            check_op(
                &format!("broadcast_to from {small:?}"),
                &dev,
                &[s],
                AFFINE,
                |t| t[0].broadcast_to([2, 3, 4]),
            );
        }
    }
}

#[test]
fn reductions_and_views() {
    for dev in common::all_devices() {
        let a = (randn(24, 1.0, 6), vec![2, 3, 4]);
        check_op("sum", &dev, std::slice::from_ref(&a), AFFINE, |t| {
            t[0].sum()
        });
        check_op("mean", &dev, std::slice::from_ref(&a), AFFINE, |t| {
            t[0].mean()
        });
        check_op(
            "sum_dim [0, 1]",
            &dev,
            std::slice::from_ref(&a),
            AFFINE,
            |t| t[0].sum_dim(&[0, 1], false),
        );
        check_op(
            "sum_dim [-1]",
            &dev,
            std::slice::from_ref(&a),
            AFFINE,
            |t| t[0].sum_dim(&[-1], false),
        );
        check_op(
            "sum_dim [0, 2] keepdim",
            &dev,
            std::slice::from_ref(&a),
            AFFINE,
            |t| t[0].sum_dim(&[0, 2], true),
        );
        check_op(
            "sum_to [3, 1]",
            &dev,
            std::slice::from_ref(&a),
            AFFINE,
            |t| t[0].sum_to(&[3, 1]),
        );
        check_op("reshape", &dev, std::slice::from_ref(&a), AFFINE, |t| {
            t[0].reshape([4, 6])?.scale(2.0)
        });
        check_op(
            "transpose_last2",
            &dev,
            std::slice::from_ref(&a),
            AFFINE,
            |t| t[0].transpose_last2(),
        );
    }
}

#[test]
fn nonlinear_unary_ops() {
    for dev in common::all_devices() {
        check_op(
            "relu",
            &dev,
            &[(away_from_zero(30, 0.1, 8), vec![5, 6])],
            KINKED,
            |t| t[0].relu(),
        );
        let x = (randn(30, 1.5, 9), vec![5, 6]);
        check_op("sigmoid", &dev, std::slice::from_ref(&x), SMOOTH, |t| {
            t[0].sigmoid()
        });
        check_op("softmax", &dev, std::slice::from_ref(&x), SMOOTH, |t| {
            t[0].softmax(-1)
        });
        check_op("tanh", &dev, std::slice::from_ref(&x), SMOOTH, |t| {
            t[0].tanh()
        });
        check_op("exp", &dev, std::slice::from_ref(&x), SMOOTH, |t| {
            t[0].exp()
        });
        check_op(
            "elu",
            &dev,
            &[(away_from_zero(30, 0.1, 18), vec![5, 6])],
            KINKED,
            |t| t[0].elu(0.7),
        );
        let e = Tensor::from_slice(&[-2.0f32, -0.5, 0.0, 1.5], [4], &dev)
            .and_then(|t| t.elu(0.7))
            .and_then(|t| t.to_vec::<f32>())
            .unwrap();
        let want = [
            0.7 * ((-2.0f32).exp() - 1.0),
            0.7 * ((-0.5f32).exp() - 1.0),
            0.0,
            1.5,
        ];
        common::assert_close("elu values", &e, &want, 1e-6, 1e-6);
        check_op(
            "leaky_relu",
            &dev,
            &[(away_from_zero(30, 0.1, 17), vec![5, 6])],
            KINKED,
            |t| t[0].leaky_relu(0.2),
        );
        let pos = (uniform(30, 0.5, 2.0, 10), vec![5, 6]);
        check_op("log", &dev, std::slice::from_ref(&pos), SMOOTH, |t| {
            t[0].log()
        });
        check_op("recip", &dev, std::slice::from_ref(&pos), SMOOTH, |t| {
            t[0].recip()
        });
        check_op("sqrt_eps", &dev, &[pos], SMOOTH, |t| t[0].sqrt_eps(1e-3));
    }
}

#[test]
fn softmax_cross_entropy_loss() {
    for dev in common::all_devices() {
        let labels = Tensor::from_slice(&[2u32, 0, 4, 4, 1], [5], &dev).unwrap();
        check_op(
            "softmax_cross_entropy",
            &dev,
            &[(randn(30, 2.0, 11), vec![5, 6])],
            SMOOTH,
            |t| Ok(t[0].softmax_cross_entropy(&labels)?.0),
        );
    }
}

#[test]
fn convolution_pooling_and_columns() {
    for dev in common::all_devices() {
        let x = (randn(2 * 3 * 5 * 5, 1.0, 12), vec![2, 3, 5, 5]);
        let w = (randn(4 * 3 * 3 * 3, 0.5, 13), vec![4, 3, 3, 3]);
        let b = (randn(4, 1.0, 14), vec![4]);
        for (stride, pad) in [(1, 1), (2, 0)] {
            check_op(
                &format!("conv2d stride {stride} pad {pad}"),
                &dev,
                &[x.clone(), w.clone(), b.clone()],
                AFFINE,
                |t| t[0].conv2d(&t[1], &t[2], stride, pad),
            );
        }
        check_op("im2col", &dev, std::slice::from_ref(&x), AFFINE, |t| {
            t[0].im2col(3, 3, 2, 1)
        });
        let g = {
            let t = Tensor::zeros([2, 3, 5, 5], DType::F32, &dev).unwrap();
            t.conv_geom(3, 3, 2, 1).unwrap()
        };
        let cols = g.col_rows() * g.col_cols();
        check_op(
            "col2im",
            &dev,
            &[(randn(cols, 1.0, 15), vec![g.col_rows(), g.col_cols()])],
            AFFINE,
            |t| t[0].col2im(&g),
        );
        // Distinct values 0.2 apart in a shuffled order: every window has one clear maximum.
        let mut vals: Vec<f32> = (0..2 * 3 * 6 * 6).map(|i| 0.2 * i as f32 - 20.0).collect();
        let mut rng = SplitMix64::new(16);
        for i in (1..vals.len()).rev() {
            vals.swap(i, rng.below(i as u64 + 1) as usize);
        }
        check_op(
            "max_pool2d 2x2",
            &dev,
            &[(vals, vec![2, 3, 6, 6])],
            KINKED,
            |t| Ok(t[0].max_pool2d(2, 2, 2, 0)?.0),
        );
    }
}

#[test]
fn pooling_slicing_embedding_and_losses() {
    use wgnn::nn::{bce_with_logits, mse_loss};
    for dev in common::all_devices() {
        let x = (randn(2 * 3 * 6 * 6, 1.0, 20), vec![2, 3, 6, 6]);
        for (k, s, p) in [(2, 2, 0), (3, 2, 1)] {
            check_op(
                &format!("avg_pool2d {k}x{k} stride {s} pad {p}"),
                &dev,
                std::slice::from_ref(&x),
                AFFINE,
                |t| t[0].avg_pool2d(k, s, p),
            );
        }
        check_op(
            "global_avg_pool2d",
            &dev,
            std::slice::from_ref(&x),
            AFFINE,
            |t| t[0].global_avg_pool2d(),
        );
        for dim in 0..4 {
            let len = x.1[dim] - 1;
            check_op(
                &format!("narrow dim {dim}"),
                &dev,
                std::slice::from_ref(&x),
                AFFINE,
                |t| t[0].narrow(dim as isize, 1, len),
            );
        }
        check_op(
            "chunk: the middle of 3 along -1",
            &dev,
            std::slice::from_ref(&x),
            AFFINE,
            |t| Ok(t[0].chunk(3, -1)?.swap_remove(1)),
        );
        let parts = Tensor::arange(0.0, 10.0, 1.0, &dev)
            .and_then(|t| t.split(4, 0))
            .unwrap();
        let sizes: Vec<usize> = parts.iter().map(|p| p.dims()[0]).collect();
        assert_eq!(sizes, [4, 4, 2], "split(4) of 10");
        assert_eq!(parts[2].to_vec::<f32>().unwrap(), [8.0, 9.0]);
        let y = (randn(2 * 2 * 6 * 6, 1.0, 21), vec![2, 2, 6, 6]);
        check_op("cat dim 1", &dev, &[x.clone(), y], AFFINE, |t| {
            Tensor::cat(&[&t[0], &t[1], &t[0]], 1)
        });
        let idx = Tensor::from_slice(&[3u32, 0, 3, 1, 4, 3], [2, 3], &dev).unwrap();
        check_op(
            "embedding (row 3 used three times, row 2 never)",
            &dev,
            &[(randn(5 * 4, 1.0, 22), vec![5, 4])],
            AFFINE,
            |t| t[0].embedding(&idx),
        );
        let z = (randn(24, 2.0, 23), vec![4, 6]);
        check_op("softplus", &dev, std::slice::from_ref(&z), SMOOTH, |t| {
            t[0].softplus()
        });
        let target = Tensor::from_slice(&uniform(24, 0.0, 1.0, 24), [4, 6], &dev).unwrap();
        check_op(
            "bce_with_logits",
            &dev,
            std::slice::from_ref(&z),
            SMOOTH,
            |t| bce_with_logits(&t[0], &target),
        );
        check_op(
            "mse_loss",
            &dev,
            &[z.clone(), (randn(24, 1.0, 25), vec![4, 6])],
            SMOOTH,
            |t| mse_loss(&t[0], &t[1]),
        );
    }
}

/// The fused batch norm's backward, through every input: x (smooth; each channel's values
/// spread with σ ≈ 2 so 1/σ³ stays small, h = 5e-3), γ and β (affine).
#[test]
fn fused_batch_norm() {
    for dev in common::all_devices() {
        let inputs = [
            (randn(4 * 3 * 5, 2.0, 40), vec![4, 3, 5]),
            (uniform(3, 0.5, 1.5, 41), vec![3]),
            (randn(3, 1.0, 42), vec![3]),
        ];
        check_op("batch_norm_train", &dev, &inputs, SMOOTH, |t| {
            Ok(t[0].batch_norm_train(&t[1], &t[2], 1e-5)?.0)
        });
    }
}

/// The losses' values against hand-computed ones.
#[test]
fn loss_values() -> Result<()> {
    use wgnn::nn::{bce_with_logits, mse_loss};
    for dev in common::all_devices() {
        let x = Tensor::from_slice(&[0.0f32, 2.0, -3.0, 100.0], [4], &dev)?;
        let t = Tensor::from_slice(&[1.0f32, 0.0, 0.5, 1.0], [4], &dev)?;
        // softplus(x) - x·t: ln 2, ln(1 + e²), ln(1 + e⁻³) + 1.5, 100 + 0 − 100.
        let want = (2f64.ln() + (1.0 + 2f64.exp()).ln() + ((1.0 + (-3f64).exp()).ln() + 1.5)) / 4.0;
        let got = bce_with_logits(&x, &t)?.item()? as f64;
        assert!((got - want).abs() < 1e-6, "{dev}: bce {got} vs {want}");
        let got = mse_loss(&x, &t)?.item()? as f64;
        let want = (1.0 + 4.0 + 12.25 + 99.0 * 99.0) / 4.0;
        assert!((got - want).abs() < 1e-3, "{dev}: mse {got} vs {want}");
        let e = Tensor::cat(&[&x, &t.reshape([2, 2])?], 0).expect_err("ranks");
        assert!(e.to_string().contains("cat"), "{e}");
        let e = x.narrow(0, 3, 2).expect_err("past the end").to_string();
        assert!(e.contains("3..5") && e.contains("[4]"), "{e}");
    }
    let table = Tensor::zeros([3, 2], DType::F32, &Device::Cpu)?;
    let idx = Tensor::from_slice(&[0u32, 3], [2], &Device::Cpu)?;
    let e = table
        .embedding(&idx)
        .expect_err("index 3 of 3 rows")
        .to_string();
    assert!(
        e.contains("index 3 at position 1") && e.contains("3 rows"),
        "{e}"
    );
    Ok(())
}

/// A weight used twice in one graph gets the sum of both uses' gradients, and a second
/// backward adds to what the first left (PyTorch's accumulation); `zero_grad` clears it.
#[test]
fn gradients_accumulate() -> Result<()> {
    for dev in common::all_devices() {
        let w = Tensor::from_slice(&[1.0f32, 2.0, 3.0, 4.0], [2, 2], &dev)?.requiring_grad()?;
        let x = Tensor::from_slice(&[1.0f32, -1.0, 0.5, 2.0], [2, 2], &dev)?;
        // y = (x·w)·w, L = Σ y: dL/dw = xᵀ·1·wᵀ + (x·w)ᵀ·1.
        let loss = x
            .matmul_t(&w, false, false)?
            .matmul_t(&w, false, false)?
            .sum()?;
        loss.backward()?;
        let g1 = w.grad().expect("gradient").to_vec::<f32>()?;
        // By hand: ones = [[1,1],[1,1]]; xᵀ·ones·wᵀ = [[1.5,1.5],[1,1]]·wᵀ
        //   = [[4.5, 10.5], [3, 7]]; (x·w) = [[-2,-2],[6.5,9]], (x·w)ᵀ·ones = [[4.5,4.5],[7,7]].
        common::assert_close(
            &format!("dL/dw on {dev}"),
            &g1,
            &[9.0, 15.0, 10.0, 14.0],
            1e-5,
            1e-6,
        );
        let loss = x
            .matmul_t(&w, false, false)?
            .matmul_t(&w, false, false)?
            .sum()?;
        loss.backward()?;
        let g2 = w.grad().expect("gradient").to_vec::<f32>()?;
        common::assert_close(
            &format!("accumulated on {dev}"),
            &g2,
            &[18.0, 30.0, 20.0, 28.0],
            1e-5,
            1e-6,
        );
        w.zero_grad();
        assert!(w.grad().is_none(), "{dev}: zero_grad left a gradient");
        assert!(x.grad().is_none() && !x.requires_grad());
    }
    Ok(())
}

/// A module applied twice in one forward (an RNN cell over time, a tied layer) gets the sum of
/// both uses' gradients: `y = f(f(x))` with `f = Linear(3→3)`, against the chain rule by hand.
#[test]
fn a_module_used_twice_gets_both_gradients() -> Result<()> {
    use wgnn::nn::{Init, Linear, Module, ModuleExt};
    for dev in common::all_devices() {
        let mut f = Linear::with_init(3, 3, Init::Std(0.5), 30, &dev)?;
        let x = Tensor::from_slice(&randn(6, 1.0, 31), [2, 3], &dev)?;
        let r = randn(6, 1.0, 32);
        let rt = Tensor::from_slice(&r, [2, 3], &dev)?;
        let h = f.forward(&x)?;
        let y = f.forward(&h)?;
        y.backward_with(&rt)?;
        let w: Vec<f64> = f
            .weight()
            .value()
            .to_vec::<f32>()?
            .iter()
            .map(|&v| v as f64)
            .collect();
        let b: Vec<f64> = f
            .bias()
            .value()
            .to_vec::<f32>()?
            .iter()
            .map(|&v| v as f64)
            .collect();
        let xs: Vec<f64> = x.to_vec::<f32>()?.iter().map(|&v| v as f64).collect();
        // y1 = x·W + b; y2 = y1·W + b; with R = dL/dy2: dL/dy1 = R·Wᵀ,
        // dW = y1ᵀ·R + xᵀ·(R·Wᵀ), db = Σ_rows R + Σ_rows R·Wᵀ.
        let mm = |a: &[f64], b: &[f64], ta: bool, tb: bool| -> Vec<f64> {
            let at = |i: usize, k: usize| if ta { a[k * 3 + i] } else { a[i * 3 + k] };
            let bt = |k: usize, j: usize| if tb { b[j * 3 + k] } else { b[k * 3 + j] };
            let rows = if ta { 3 } else { a.len() / 3 };
            let kk = if ta { a.len() / 3 } else { 3 };
            (0..rows * 3)
                .map(|ij| (0..kk).map(|k| at(ij / 3, k) * bt(k, ij % 3)).sum())
                .collect()
        };
        let r64: Vec<f64> = r.iter().map(|&v| v as f64).collect();
        let mut y1 = mm(&xs, &w, false, false);
        y1.iter_mut().enumerate().for_each(|(i, v)| *v += b[i % 3]);
        let dy1 = mm(&r64, &w, false, true);
        let dw: Vec<f32> = mm(&y1, &r64, true, false)
            .iter()
            .zip(mm(&xs, &dy1, true, false))
            .map(|(a, c)| (a + c) as f32)
            .collect();
        let db: Vec<f32> = (0..3)
            .map(|j| (0..2).map(|i| r64[i * 3 + j] + dy1[i * 3 + j]).sum::<f64>() as f32)
            .collect();
        let grads: Vec<Vec<f32>> = f
            .named_parameters()
            .iter()
            .map(|(_, p)| p.grad().expect("a gradient").to_vec::<f32>().unwrap())
            .collect();
        common::assert_close(
            &format!("weight used twice on {dev}"),
            &grads[0],
            &dw,
            1e-5,
            1e-5,
        );
        common::assert_close(
            &format!("bias used twice on {dev}"),
            &grads[1],
            &db,
            1e-5,
            1e-5,
        );
    }
    Ok(())
}

/// `no_grad` records nothing; `detach` cuts a branch; `backward_with` starts from a given
/// gradient; a walked graph cannot be walked again; a recorded tensor refuses in-place ops.
#[test]
fn graph_semantics() -> Result<()> {
    for dev in common::all_devices() {
        let w = Tensor::from_slice(&[2.0f32, -1.0, 0.5], [3], &dev)?.requiring_grad()?;
        {
            let _g = no_grad();
            assert!(!is_grad_enabled());
            let y = w.scale(3.0)?;
            assert!(!y.requires_grad(), "{dev}: recorded under no_grad");
        }
        assert!(is_grad_enabled());

        // y = w·w + detach(w)·3: only the first term reaches w.
        let y = w.mul(&w)?.add(&w.detach().scale(3.0)?)?;
        assert!(y.requires_grad() && !y.is_leaf());
        let upstream = Tensor::from_slice(&[1.0f32, 10.0, -2.0], [3], &dev)?;
        y.backward_with(&upstream)?;
        let g = w.grad().expect("gradient").to_vec::<f32>()?;
        assert_eq!(g, vec![4.0, -20.0, -2.0], "{dev}: 2w ⊙ upstream");

        let e = y
            .backward_with(&upstream)
            .expect_err("second walk")
            .to_string();
        assert!(e.contains("already walked"), "{dev}: {e}");
        let e = y.backward().expect_err("not a scalar").to_string();
        assert!(e.contains("one-element") && e.contains("[3]"), "{dev}: {e}");
        let wrong = Tensor::zeros([2], DType::F32, &dev)?;
        let z = w.scale(2.0)?;
        let e = z.backward_with(&wrong).expect_err("shape").to_string();
        assert!(e.contains("[2]") && e.contains("[3]"), "{dev}: {e}");
        let plain = Tensor::zeros([1], DType::F32, &dev)?;
        let e = plain.backward().expect_err("no graph").to_string();
        assert!(e.contains("does not require a gradient"), "{dev}: {e}");

        let mut z = w.scale(2.0)?;
        let e = z.fill_(0.0).expect_err("in place").to_string();
        assert!(
            e.contains("recorded op") && e.contains("detach"),
            "{dev}: {e}"
        );
        let mut u = Tensor::zeros([2], DType::U32, &dev)?;
        assert!(u.set_requires_grad(true).is_err(), "{dev}: u32 leaf");
    }
    Ok(())
}

/// Mixed precision's cast: an f32 leaf used in f16 gets an f32 gradient.
#[test]
fn casts_carry_gradients_back_to_f32() -> Result<()> {
    for dev in common::cpu_and_f16_gpus() {
        let w = Tensor::from_slice(&[0.5f32, -1.5, 2.0, 0.25], [4], &dev)?.requiring_grad()?;
        let y = w
            .to_dtype(DType::F16)?
            .mul(&w.to_dtype(DType::F16)?)?
            .sum()?;
        assert_eq!(y.dtype(), DType::F16);
        y.backward()?;
        let g = w.grad().expect("gradient");
        assert_eq!(g.dtype(), DType::F32, "{dev}");
        assert_eq!(g.to_vec::<f32>()?, vec![1.0, -3.0, 4.0, 0.5], "{dev}");
    }
    Ok(())
}
