//! Gradient checks of every module (and the loss, and whole networks) through autograd:
//! dx and each parameter gradient against central differences of the forward, on the CPU and
//! on every GPU adapter.
//!
//! For a module the scalar objective is `L = Σ forward(x) ⊙ R` with a fixed random `R`, so the
//! analytic gradients are what `forward(x).backward_with(R)` leaves in `x` and the parameters.
//! `L` is summed in f64 on the host from the f32 outputs, and the numerical derivative is
//! `(L(v + h) − L(v − h)) / ((v + h) − (v − h))` with the denominator taken from the f32
//! values actually used. Dropout's step counter is held fixed, so every evaluation draws one
//! mask.
//!
//! Error budget (everything the device computes is f32, u = 2⁻²⁴ ≈ 6e-8):
//! - rounding: the outputs an element influences are recomputed with different rounding
//!   errors at v ± h; outputs it does not touch are recomputed bit-identically and cancel in
//!   `L(v+h) − L(v−h)`. With `k` influenced outputs of size ≲ Y, each rounded by ≲ c·u·Y, the
//!   derivative is off by ≈ √k·|R|·c·u·Y / (2h);
//! - truncation: (h²/6)·|∂³L/∂v³|, which is exactly zero where L is affine in the element
//!   (Linear, Conv2d, Dropout, the parameters of BatchNorm) or piecewise affine and the
//!   perturbation does not cross a kink (Relu, MaxPool2d).
//!
//! So affine cases use a large h (0.5), which only shrinks the rounding term, and get tight
//! tolerances; smooth nonlinear cases (Sigmoid, BatchNorm's dx, the loss, whole networks)
//! use h = 1e-2…3e-2, balancing the two terms. Each case's comment gives its numbers; the
//! pass criterion is `|num − ana| ≤ atol + rtol·|ana|`, rtol covering the analytic side's
//! own f32 rounding.
//!
//! On the CPU every element of every tensor is checked (the shapes are small); on a GPU a
//! seeded sample of [`GPU_SAMPLES`] elements per tensor (software adapters are slow and each
//! evaluation is a read-back).

mod common;

use common::grad::*;
use std::sync::Once;
use wgnn::autograd::no_grad;
use wgnn::models::{Activation, MlpConfig, mlp};
use wgnn::nn::{
    BatchNorm, Conv2d, Dropout, DropoutMode, Init, Linear, MaxPool2d, Module, ModuleExt, Relu,
    Sequential, Sigmoid, cross_entropy,
};
use wgnn::rng::SplitMix64;
use wgnn::{Device, Tensor};

/// Announces each device once per test binary.
fn devices() -> Vec<Device> {
    static ANNOUNCE: Once = Once::new();
    let devs = common::all_devices();
    ANNOUNCE.call_once(|| {
        for dev in &devs {
            println!("grad_check: analytic vs central-difference gradients on {dev}");
        }
    });
    devs
}

// ---------------------------------------------------------------------------------------------
// Affine layers: L is affine in every single element, so h only trades rounding noise.
// ---------------------------------------------------------------------------------------------

/// x N(0, 1), W N(0, 0.5²), b N(0, 1): outputs are sums of ≤ 13 terms, |y| ≲ 5, each rounded
/// by ≈ √13·u·5 ≈ 1e-6 (random-walk estimate; 4e-6 worst case); an element touches ≤ 5
/// outputs (|R| ≲ 3), so with h = 0.5 the rounding term is ≈ √5·3·1e-6 / 1 ≈ 7e-6 and
/// truncation is zero. atol 3e-5 (observed ≤ 1e-6); rtol 1e-5 is ~100 ulps of the analytic
/// gradient's own short sums.
const AFFINE: Fd = fd(0.5, 3e-5, 1e-5);

#[test]
fn linear_rank2_and_rank4_inputs() {
    for dev in devices() {
        // (input shape, in, out)
        for (i, (shape, fin, fout)) in [(vec![4, 6], 6, 5), (vec![2, 3, 2, 2], 12, 4)]
            .into_iter()
            .enumerate()
        {
            let seed = 100 + 10 * i as u64;
            let mut layer = Linear::with_init(fin, fout, Init::Std(0.5), seed, &dev).unwrap();
            randomize_params(&mut layer, &[(0.0, 0.5), (0.0, 1.0)], seed + 1, &dev);
            let x = randn(shape.iter().product(), 0.0, 1.0, seed + 2);
            let what = format!("Linear({fin}→{fout}) x {shape:?}");
            check_layer(
                &what,
                &dev,
                &mut layer,
                &x,
                &shape,
                AFFINE,
                AFFINE,
                seed + 3,
            );
        }
    }
}

/// Outputs sum ≤ C·KH·KW + 1 = 28 terms (|y| ≲ 8, rounding ≲ 28·u·8 ≈ 1.3e-5 worst case,
/// ≈ √28·u·8 ≈ 2.5e-6 as a random walk); an input element touches ≤ F·9 = 36 outputs and a
/// weight N·OH·OW ≤ 60, so with h = 0.5 the rounding term is ≲ √60·3·2.5e-6 ≈ 6e-5 (an
/// overestimate: most outputs are far smaller than 8). atol 1e-4 (observed ≤ 5e-6), rtol 1e-5
/// (dw sums 60 terms).
const CONV: Fd = fd(0.5, 1e-4, 1e-5);

#[test]
fn conv2d() {
    // (input NCHW, filters, kernel, stride, pad)
    let cases: [([usize; 4], usize, usize, usize, usize); 3] = [
        ([2, 3, 5, 6], 4, 3, 1, 1),
        ([2, 2, 4, 5], 3, 3, 1, 2),
        ([2, 3, 6, 6], 2, 2, 2, 0),
    ];
    for dev in devices() {
        for (i, (shape, f, k, s, p)) in cases.into_iter().enumerate() {
            let seed = 200 + 10 * i as u64;
            let mut layer =
                Conv2d::with_init(shape[1], f, k, s, p, Init::Std(0.5), seed, &dev).unwrap();
            randomize_params(&mut layer, &[(0.0, 0.5), (0.0, 1.0)], seed + 1, &dev);
            let x = randn(shape.iter().product(), 0.0, 1.0, seed + 2);
            let what = format!(
                "Conv2d({}→{f}, {k}x{k}, stride {s}, pad {p}) x {shape:?}",
                shape[1]
            );
            check_layer(&what, &dev, &mut layer, &x, &shape, CONV, CONV, seed + 3);
        }
    }
}

/// y = x·mask with mask ∈ {0, scale}: each output is one product, rounded by ≤ u·|y| ≈ 3e-7,
/// and an element touches one output, so with h = 0.5 the rounding term is ≲ 3e-7·3 ≈ 1e-6.
#[test]
fn dropout_train_both_modes() {
    let fdx = fd(0.5, 1e-5, 1e-6);
    for dev in devices() {
        for (i, mode) in [DropoutMode::Inverted, DropoutMode::Book]
            .into_iter()
            .enumerate()
        {
            let seed = 300 + 10 * i as u64;
            let shape = [4, 3, 2, 3];
            let x = randn(72, 0.0, 1.0, seed);
            let mut layer = Dropout::with_mode(0.3, mode, seed).unwrap();
            let what = format!("Dropout(0.3, {mode:?})");
            check_layer(&what, &dev, &mut layer, &x, &shape, fdx, fdx, seed + 1);
            // The mask must actually drop some units and keep others, with the mode's scale.
            let xt = Tensor::from_slice(&x, shape, &dev).unwrap();
            hold_counters(&mut layer);
            let y = layer.forward(&xt).unwrap().to_vec::<f32>().unwrap();
            let scale = match mode {
                DropoutMode::Inverted => 1.0 / (1.0 - 0.3f32),
                DropoutMode::Book => 1.0,
            };
            let dropped = y.iter().filter(|&&v| v == 0.0).count();
            assert!(
                (5..=40).contains(&dropped),
                "{what} on {dev}: {dropped} of 72 dropped"
            );
            for (a, b) in y.iter().zip(&x) {
                assert!(
                    *a == 0.0 || *a == b * scale,
                    "{what} on {dev}: {a} is not 0 or {b}·{scale}"
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Piecewise-affine layers: inputs chosen so that no perturbation crosses a kink.
// ---------------------------------------------------------------------------------------------

/// Outputs are copies of inputs (or 0), so L(v ± h) are exact f64 sums of exact products:
/// the numerical derivative is exact up to f64 rounding; the analytic one adds at most a few
/// R values in f32.
const EXACT: f64 = 1e-6;

#[test]
fn relu_away_from_zero() {
    let fdx = fd(0.1, EXACT, EXACT);
    for dev in devices() {
        for (i, shape) in [vec![3, 7], vec![2, 2, 3, 3]].into_iter().enumerate() {
            let seed = 400 + 10 * i as u64;
            let n: usize = shape.iter().product();
            // |x| in [0.25, 2.25] with a random sign: x ± 0.1 never changes sign.
            let mut rng = SplitMix64::new(seed);
            let x: Vec<f32> = (0..n)
                .map(|_| {
                    let m = 0.25 + 2.0 * rng.next_f64() as f32;
                    if rng.next_u64() & 1 == 0 { m } else { -m }
                })
                .collect();
            let mut layer = Relu::new();
            check_layer(
                &format!("Relu x {shape:?}"),
                &dev,
                &mut layer,
                &x,
                &shape,
                fdx,
                fdx,
                seed,
            );
        }
    }
}

/// Distinct values (a seeded shuffle of 0..n, centred, times `gap`): no ties anywhere.
fn distinct(n: usize, gap: f32, seed: u64) -> Vec<f32> {
    let mut v: Vec<f32> = (0..n).map(|i| (i as f32 - (n / 2) as f32) * gap).collect();
    let mut rng = SplitMix64::new(seed);
    for i in (1..n).rev() {
        v.swap(i, rng.below(i as u64 + 1) as usize);
    }
    v
}

#[test]
fn max_pool_without_ties() {
    // Values 0.1 apart and h = 0.02: a perturbed element never overtakes or falls below
    // another element of its windows, so the argmax never flips.
    let fdx = fd(0.02, EXACT, EXACT);
    // (input NCHW, window, stride, pad): disjoint windows, and overlapping padded ones where
    // one element can be the maximum of several windows (its gradient is then a sum).
    let cases: [([usize; 4], usize, usize, usize); 3] = [
        ([2, 3, 4, 6], 2, 2, 0),
        ([2, 2, 5, 5], 3, 2, 1),
        ([1, 2, 5, 7], 3, 1, 0),
    ];
    for dev in devices() {
        for (i, (shape, k, s, p)) in cases.into_iter().enumerate() {
            let seed = 500 + 10 * i as u64;
            let x = distinct(shape.iter().product(), 0.1, seed);
            let mut layer = MaxPool2d::new(k, s, p);
            let what = format!("MaxPool2d({k}x{k}, stride {s}, pad {p}) x {shape:?}");
            check_layer(&what, &dev, &mut layer, &x, &shape, fdx, fdx, seed + 1);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Smooth nonlinear layers.
// ---------------------------------------------------------------------------------------------

/// σ''' is bounded by 1/8, so with h = 2e-2 truncation is ≤ h²/6·|R|/8 ≈ 8e-6·|R| ≲ 3e-5.
/// Each output touched once; y ≈ 0.5 is computed to a few ulps (WGSL's exp is promised to
/// 3 + 2|x| ulp), ≲ 1e-6, so rounding adds ≲ 3·1e-6/0.04 ≈ 8e-5. atol 1e-4, rtol 1e-3
/// (observed ≤ 1.4e-5).
#[test]
fn sigmoid() {
    let fdx = fd(2e-2, 1e-4, 1e-3);
    for dev in devices() {
        let shape = [3, 2, 2, 4];
        let x = randn(48, 0.0, 2.0, 600);
        let mut layer = Sigmoid::new();
        check_layer("Sigmoid", &dev, &mut layer, &x, &shape, fdx, fdx, 601);
    }
}

/// `n` rows of `d` features, each feature with mean in ±2 and a batch standard deviation set
/// to exactly `std_f` ∈ [1, 2]: no feature has a tiny batch variance, which would blow up
/// the curvature (∂³y/∂x³ ∝ 1/σ³).
fn batch(n: usize, d: usize, seed: u64) -> Vec<f32> {
    let mut rng = SplitMix64::new(seed);
    let mut x = vec![0f32; n * d];
    for f in 0..d {
        let z: Vec<f64> = (0..n).map(|_| rng.next_normal()).collect();
        let mean = z.iter().sum::<f64>() / n as f64;
        let std = (z.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64).sqrt();
        let (mu, sd) = (4.0 * rng.next_f64() - 2.0, 1.0 + rng.next_f64());
        for (i, zi) in z.iter().enumerate() {
            x[i * d + f] = (mu + sd * (zi - mean) / std) as f32;
        }
    }
    x
}

/// dx: y is smooth in x with σ ≥ 1 (see [`batch`]); ∂³y/∂x³ is a few |γ|/σ³ per output,
/// summed against R over the N outputs of the feature, so truncation h²/6·|∂³L| is
/// ≈ 7e-5·few at h = 2e-2. Each x touches those N outputs (|y| ≲ 3, a chain of ~8 f32 ops,
/// error ≲ 1e-6 each), rounding ≲ √N·3·1e-6/0.04 ≈ 2e-4 at worst. atol 2e-4, rtol 1e-3
/// (observed ≤ 5e-5). γ and β: L is affine in them (AFFINE).
const BN_X: Fd = fd(2e-2, 2e-4, 1e-3);

#[test]
fn batch_norm_train_2d_and_4d() {
    for dev in devices() {
        for (i, shape) in [vec![6, 5], vec![4, 2, 3, 3]].into_iter().enumerate() {
            let seed = 700 + 10 * i as u64;
            let (n, d) = (shape[0], shape[1..].iter().product::<usize>());
            let mut layer = BatchNorm::new(d, &dev).unwrap();
            randomize_params(&mut layer, &[(1.0, 0.3), (0.0, 0.5)], seed, &dev);
            let x = batch(n, d, seed + 1);
            let what = format!("BatchNorm({d}) x {shape:?}");
            check_layer(&what, &dev, &mut layer, &x, &shape, BN_X, AFFINE, seed + 2);
        }
    }
}

/// Per-channel BatchNorm (`BatchNorm::channels`, PyTorch's BatchNorm2d) on `[N, C, H, W]`:
/// each channel's N·H·W values drawn as one feature of [`batch`] (σ ≥ 1), so [`BN_X`]'s
/// reasoning holds with N·H·W = 36 outputs per statistic in place of N: rounding
/// ≲ √36·3·1e-6/0.04 ≈ 5e-4 at worst; atol 5e-4, rtol 1e-3. γ and β: affine.
#[test]
fn batch_norm_per_channel() {
    let (n, c, h, w) = (4, 3, 3, 3);
    let flat = batch(n * h * w, c, 760);
    let mut x = vec![0f32; flat.len()];
    for (row, vals) in flat.chunks_exact(c).enumerate() {
        let (img, p) = (row / (h * w), row % (h * w));
        for (ch, &v) in vals.iter().enumerate() {
            x[(img * c + ch) * h * w + p] = v;
        }
    }
    for dev in devices() {
        let mut layer = BatchNorm::channels(c, &dev).unwrap();
        randomize_params(&mut layer, &[(1.0, 0.3), (0.0, 0.5)], 761, &dev);
        let what = format!("BatchNorm2d({c}) x [{n}, {c}, {h}, {w}]");
        check_layer(
            &what,
            &dev,
            &mut layer,
            &x,
            &[n, c, h, w],
            fd(2e-2, 5e-4, 1e-3),
            AFFINE,
            762,
        );
    }
}

/// The modules around the newer ops: Tanh and GlobalAvgPool2d (smooth / affine), LeakyRelu
/// (inputs ≥ 0.25 from its kink, h = 0.1: exact up to rounding), AvgPool2d (affine), and
/// Embedding (affine in its table; the indices are data). Budgets as the cases above.
#[test]
fn tanh_leaky_relu_pools_and_embedding() {
    use wgnn::nn::{AvgPool2d, Embedding, GlobalAvgPool2d, LeakyRelu, Tanh};
    for dev in devices() {
        let shape = [2, 3, 4, 4];
        let x = randn(96, 0.0, 1.0, 950);
        let smooth = fd(2e-2, 1e-4, 1e-3);
        check_layer("Tanh", &dev, &mut Tanh, &x, &shape, smooth, smooth, 951);
        check_layer(
            "AvgPool2d",
            &dev,
            &mut AvgPool2d::new(2, 2, 0),
            &x,
            &shape,
            AFFINE,
            AFFINE,
            952,
        );
        check_layer(
            "GlobalAvgPool2d",
            &dev,
            &mut GlobalAvgPool2d,
            &x,
            &shape,
            AFFINE,
            AFFINE,
            953,
        );
        let mut rng = SplitMix64::new(954);
        let away: Vec<f32> = (0..96)
            .map(|_| {
                let m = 0.25 + 2.0 * rng.next_f64() as f32;
                if rng.next_u64() & 1 == 0 { m } else { -m }
            })
            .collect();
        let mut leaky = LeakyRelu {
            negative_slope: 0.2,
        };
        let kinked = fd(0.1, EXACT, EXACT);
        check_layer(
            "LeakyRelu",
            &dev,
            &mut leaky,
            &away,
            &shape,
            kinked,
            kinked,
            955,
        );
        // Embedding: the "input" is u32 indices, so only the table's gradient is checked.
        let mut emb = Embedding::with_seed(5, 3, 956, &dev).unwrap();
        let idx = Tensor::from_slice(&[1u32, 4, 1, 0, 2, 1], [2, 3], &dev).unwrap();
        let y = emb.forward(&idx).unwrap();
        let r = randn(y.numel(), 0.0, 1.0, 957);
        y.backward_with(&Tensor::from_slice(&r, y.dims(), &dev).unwrap())
            .unwrap();
        let g = emb.weight().grad().unwrap().to_vec::<f32>().unwrap();
        let v0 = emb.weight().value().to_vec::<f32>().unwrap();
        let objective = |emb: &mut Embedding| {
            let _no_grad = no_grad();
            dot(&emb.forward(&idx).unwrap(), &r)
        };
        check(
            &format!("Embedding on {dev}: dweight"),
            &pick(15, &dev, 958),
            &g,
            AFFINE,
            |j| {
                central_diff(&v0, j, AFFINE.h, |v| {
                    set_param(&mut emb, 0, v, &dev);
                    objective(&mut emb)
                })
            },
        );
    }
}

/// Mean softmax cross-entropy: ∂³/∂z³ of logsumexp is ≤ 0.1 per row, /N for the mean, so
/// with h = 3e-2 truncation is ≤ h²/6·0.1/N ≈ 4e-6. The loss (≈ 2, a few f32 ops per row,
/// then the mean) is off by ≲ 1e-6 per evaluation: ≲ 2e-6/0.06 ≈ 3e-5. atol 1e-4, rtol 1e-3.
#[test]
fn softmax_with_loss() {
    let fdx = fd(3e-2, 1e-4, 1e-3);
    let (rows, classes) = (5, 7);
    for dev in devices() {
        let x = randn(rows * classes, 0.0, 2.0, 800);
        let mut rng = SplitMix64::new(801);
        let labels: Vec<u32> = (0..rows)
            .map(|_| rng.below(classes as u64) as u32)
            .collect();
        let t = Tensor::from_slice(&labels, [rows], &dev).unwrap();
        let xt = Tensor::from_slice(&x, [rows, classes], &dev)
            .and_then(Tensor::requiring_grad)
            .unwrap();
        let l = cross_entropy(&xt, &t).unwrap();
        assert_eq!(l.dims(), &[] as &[usize], "loss shape (0-d, as PyTorch)");
        l.backward().unwrap();
        let dx = xt.grad().unwrap().to_vec::<f32>().unwrap();
        let objective = |v: &[f32]| {
            let xv = Tensor::from_slice(v, [rows, classes], &dev).unwrap();
            cross_entropy(&xv, &t).unwrap().item().unwrap() as f64
        };
        let idx = pick(x.len(), &dev, 802);
        let what = format!("cross_entropy on {dev}: dlogits");
        check(&what, &idx, &dx, fdx, |j| {
            central_diff(&x, j, fdx.h, objective)
        });
        // backward_with(g) scales the gradient by g (the loss-scale path).
        xt.zero_grad();
        let g = Tensor::from_slice(&[2.5f32], [0usize; 0], &dev).unwrap();
        cross_entropy(&xt, &t).unwrap().backward_with(&g).unwrap();
        let dx2 = xt.grad().unwrap().to_vec::<f32>().unwrap();
        let scaled: Vec<f32> = dx.iter().map(|v| v * 2.5).collect();
        common::assert_close(&format!("{what} × 2.5"), &dx2, &scaled, 1e-7, 1e-6);
    }
}

// ---------------------------------------------------------------------------------------------
// Whole networks through autograd, from the loss.
// ---------------------------------------------------------------------------------------------

/// Checks dx and every parameter gradient of `cross_entropy(model(x), labels)`, the dropout
/// counters held at [`STEP`] so that dropout draws one mask throughout.
#[allow(clippy::too_many_arguments)]
fn check_model(
    what: &str,
    dev: &Device,
    model: &mut Sequential,
    x: &[f32],
    shape: &[usize],
    labels: &[u32],
    fd_x: Fd,
    fd_p: Fd,
    seed: u64,
) {
    let what = format!("{what} on {dev}");
    let xt = Tensor::from_slice(x, shape, dev)
        .and_then(Tensor::requiring_grad)
        .unwrap();
    let t = Tensor::from_slice(labels, [labels.len()], dev).unwrap();
    hold_counters(model);
    let loss = cross_entropy(&model.forward(&xt).unwrap(), &t).unwrap();
    loss.backward().unwrap();
    let dx = xt.grad().unwrap_or_else(|| panic!("{what}: no dx"));
    assert_eq!(dx.dims(), shape, "{what}: dx shape");
    let dx = dx.to_vec::<f32>().unwrap();
    let grads: Vec<Vec<f32>> = model
        .named_parameters()
        .iter()
        .map(|(name, p)| {
            let g = p
                .grad()
                .unwrap_or_else(|| panic!("{what}: {name} has no gradient"));
            g.to_vec::<f32>().unwrap()
        })
        .collect();
    let objective = |model: &mut Sequential, x: &Tensor| {
        let _no_grad = no_grad();
        hold_counters(model);
        let logits = model.forward(x).unwrap();
        cross_entropy(&logits, &t).unwrap().item().unwrap() as f64
    };
    check(
        &format!("{what}: dx"),
        &pick(x.len(), dev, seed),
        &dx,
        fd_x,
        |j| {
            central_diff(x, j, fd_x.h, |v| {
                let xv = Tensor::from_slice(v, shape, dev).unwrap();
                objective(model, &xv)
            })
        },
    );
    let values = param_values(model);
    let xd = xt.detach();
    for (k, ((name, v0), g)) in values.iter().zip(&grads).enumerate() {
        let idx = pick(v0.len(), dev, seed + 1 + k as u64);
        check(&format!("{what}: d{name}"), &idx, g, fd_p, |j| {
            central_diff(v0, j, fd_p.h, |v| {
                set_param(model, k, v, dev);
                objective(model, &xd)
            })
        });
        set_param(model, k, v0, dev);
    }
}

fn labels(n: usize, classes: usize, seed: u64) -> Vec<u32> {
    let mut rng = SplitMix64::new(seed);
    (0..n).map(|_| rng.below(classes as u64) as u32).collect()
}

/// The book's MultiLayerNetExtend, small: Affine → BatchNorm → Sigmoid → Dropout(0.2) twice,
/// then Affine and the loss. Sigmoid (rather than ReLU) keeps L smooth in every parameter, so
/// no perturbation crosses a kink. L ≈ 1.6 in f32 is off by ≲ 1e-6 per evaluation, but every
/// output moves with every parameter: ≈ 1e-6/0.02 = 5e-5 at h = 1e-2; truncation
/// h²/6·|∂³L| ≲ 2e-5·|∂³L| with ∂³L = O(1). atol 1e-4, rtol 2e-3 (observed ≤ 2e-5).
const NET: Fd = fd(1e-2, 1e-4, 2e-3);

#[test]
fn mlp_with_batch_norm_and_dropout() {
    let fdp = NET;
    for dev in devices() {
        let cfg = MlpConfig {
            sizes: vec![12, 10, 8, 5],
            activation: Activation::Sigmoid,
            init: Init::Xavier,
            batch_norm: true,
            dropout: Some(0.2),
        };
        let mut model = mlp(&cfg, &dev, 900).unwrap();
        let n = 8;
        let x = randn(n * 12, 0.0, 1.0, 901);
        let t = labels(n, 5, 902);
        check_model(
            "mlp 12-10-8-5 + BatchNorm + Dropout",
            &dev,
            &mut model,
            &x,
            &[n, 12],
            &t,
            fdp,
            fdp,
            903,
        );
    }
}

/// A small conv net: MaxPool2d(2x2) on the input → Conv2d(2→3, 3x3, pad 1) → Sigmoid →
/// Conv2d(3→4, 2x2, stride 2) → Linear(16→5) → loss. The pool sees the input only, so
/// parameter perturbations never flip its argmax; the input is built so that inside every
/// 2x2 window the four values are 0.15 apart, and h = 2e-2 for dx never flips it either.
/// Same error budget as the MLP.
#[test]
fn small_conv_net() {
    let fdp = NET;
    let fdx = Fd { h: 2e-2, ..NET };
    for dev in devices() {
        let mut s = SplitMix64::new(1000);
        let mut seed = || s.next_u64();
        let mut model = Sequential::new()
            .add("pool1", MaxPool2d::new(2, 2, 0))
            .unwrap()
            .add(
                "conv1",
                Conv2d::with_init(2, 3, 3, 1, 1, Init::He, seed(), &dev).unwrap(),
            )
            .unwrap()
            .add("sig1", Sigmoid::new())
            .unwrap()
            .add(
                "conv2",
                Conv2d::with_init(3, 4, 2, 2, 0, Init::He, seed(), &dev).unwrap(),
            )
            .unwrap()
            .add(
                "fc1",
                Linear::with_init(16, 5, Init::He, seed(), &dev).unwrap(),
            )
            .unwrap();
        // Non-zero biases, so that their gradients are checked away from the initial state.
        for k in [1, 3, 5] {
            let numel = model.named_parameters()[k].1.numel();
            set_param(
                &mut model,
                k,
                &randn(numel, 0.0, 0.5, 1010 + k as u64),
                &dev,
            );
        }
        let (n, c, h, w) = (3, 2, 8, 8);
        let base = randn(n * c * (h / 2) * (w / 2), 0.0, 1.0, 1020);
        let mut rng = SplitMix64::new(1021);
        let mut x = vec![0f32; n * c * h * w];
        for (b, &v) in base.iter().enumerate() {
            let (img, wy, wx) = (b / ((h / 2) * (w / 2)), b / (w / 2) % (h / 2), b % (w / 2));
            let mut order = [0.0f32, 1.0, 2.0, 3.0];
            for i in (1..4).rev() {
                order.swap(i, rng.below(i as u64 + 1) as usize);
            }
            for (k, o) in order.iter().enumerate() {
                let (y, xx) = (2 * wy + k / 2, 2 * wx + k % 2);
                x[(img * h + y) * w + xx] = v + 0.15 * o;
            }
        }
        let t = labels(n, 5, 1022);
        check_model(
            "pool-conv-sigmoid-conv-linear net",
            &dev,
            &mut model,
            &x,
            &[n, c, h, w],
            &t,
            fdx,
            fdp,
            1023,
        );
    }
}
