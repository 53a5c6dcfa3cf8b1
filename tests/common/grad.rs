//! The central-difference gradient check of `tests/grad_check.rs` (its header explains the
//! error budget), shared with the recurrent layers' checks in `tests/rnn.rs`.

use wgnn::autograd::no_grad;
use wgnn::nn::{Module, ModuleExt};
use wgnn::rng::SplitMix64;
use wgnn::{Device, Tensor};

/// Elements checked per tensor on a GPU.
pub const GPU_SAMPLES: usize = 16;
/// The dropout step every evaluation starts from, so dropout draws one mask throughout.
pub const STEP: u64 = 5;

/// Sets every counter of `m` (dropout's step) back to [`STEP`].
pub fn hold_counters(m: &mut dyn Module) {
    for (_, c) in m.named_counters() {
        *c = STEP;
    }
}

/// Step and pass criterion of one central-difference check.
#[derive(Clone, Copy, Debug)]
pub struct Fd {
    /// The step.
    pub h: f32,
    /// Absolute tolerance.
    pub atol: f64,
    /// Relative tolerance.
    pub rtol: f64,
}

pub const fn fd(h: f32, atol: f64, rtol: f64) -> Fd {
    Fd { h, atol, rtol }
}

pub fn randn(n: usize, mean: f32, std: f32, seed: u64) -> Vec<f32> {
    let mut rng = SplitMix64::new(seed);
    (0..n)
        .map(|_| mean + std * rng.next_normal() as f32)
        .collect()
}

/// The elements to check: all on the CPU, a seeded sample on a GPU.
pub fn pick(n: usize, dev: &Device, seed: u64) -> Vec<usize> {
    if !dev.is_gpu() || n <= GPU_SAMPLES {
        return (0..n).collect();
    }
    let mut all: Vec<usize> = (0..n).collect();
    let mut rng = SplitMix64::new(seed);
    for i in 0..GPU_SAMPLES {
        let j = i + rng.below((n - i) as u64) as usize;
        all.swap(i, j);
    }
    all.truncate(GPU_SAMPLES);
    all.sort_unstable();
    all
}

/// Central difference of `f` in element `j` of `v`.
pub fn central_diff(v: &[f32], j: usize, h: f32, mut f: impl FnMut(&[f32]) -> f64) -> f64 {
    let mut p = v.to_vec();
    p[j] = v[j] + h;
    let plus = f(&p);
    p[j] = v[j] - h;
    let minus = f(&p);
    (plus - minus) / ((v[j] + h) as f64 - (v[j] - h) as f64)
}

/// Compares `ana[j]` with the numerical derivative `num(j)` for every `j` in `idx`.
pub fn check(what: &str, idx: &[usize], ana: &[f32], fd: Fd, mut num: impl FnMut(usize) -> f64) {
    for &j in idx {
        let n = num(j);
        let a = ana[j] as f64;
        let err = (n - a).abs();
        let tol = fd.atol + fd.rtol * a.abs();
        assert!(
            err <= tol,
            "{what}: element {j}: analytic {a:e}, numerical {n:e} (|diff| {err:e} > tol {tol:e}, h {})",
            fd.h
        );
    }
}

pub fn dot(y: &Tensor, r: &[f32]) -> f64 {
    y.to_vec::<f32>()
        .unwrap()
        .iter()
        .zip(r)
        .map(|(&a, &b)| a as f64 * b as f64)
        .sum()
}

/// Sets parameter `k` (in `named_parameters()` order) of a layer or model to `v`.
pub fn set_param(m: &mut dyn Module, k: usize, v: &[f32], dev: &Device) {
    let mut params = m.named_parameters();
    let (_, p) = &mut params[k];
    let shape = p.value().dims().to_vec();
    p.set_value(Tensor::from_slice(v, shape, dev).unwrap())
        .unwrap();
}

/// Name and host values of every parameter of `m`.
pub fn param_values(m: &mut dyn Module) -> Vec<(String, Vec<f32>)> {
    m.named_parameters()
        .into_iter()
        .map(|(n, p)| (n, p.value().to_vec::<f32>().unwrap()))
        .collect()
}

/// Replaces each parameter of `layer` by seeded N(mean, std²) values (e.g. a non-zero bias).
pub fn randomize_params(layer: &mut dyn Module, stats: &[(f32, f32)], seed: u64, dev: &Device) {
    let numels: Vec<usize> = layer
        .named_parameters()
        .iter()
        .map(|(_, p)| p.numel())
        .collect();
    assert_eq!(
        numels.len(),
        stats.len(),
        "{}: parameter count",
        layer.describe()
    );
    for (k, (&(mean, std), numel)) in stats.iter().zip(numels).enumerate() {
        set_param(layer, k, &randn(numel, mean, std, seed + k as u64), dev);
    }
}

/// Checks dx and every parameter gradient of `layer` at input `x` (shape `shape`) on `dev`.
/// `fd_x` is used for the input, `fd_p` for the parameters.
#[allow(clippy::too_many_arguments)]
pub fn check_layer(
    what: &str,
    dev: &Device,
    layer: &mut dyn Module,
    x: &[f32],
    shape: &[usize],
    fd_x: Fd,
    fd_p: Fd,
    seed: u64,
) {
    let what = format!("{what} on {dev}");
    let xt = Tensor::from_slice(x, shape, dev)
        .and_then(Tensor::requiring_grad)
        .unwrap();
    hold_counters(layer);
    let y = layer.forward(&xt).unwrap();
    let r = randn(y.numel(), 0.0, 1.0, seed);
    let rt = Tensor::from_slice(&r, y.dims(), dev).unwrap();
    y.backward_with(&rt).unwrap();
    let dx = xt.grad().unwrap_or_else(|| panic!("{what}: no dx"));
    assert_eq!(dx.dims(), shape, "{what}: dx shape");
    let dx = dx.to_vec::<f32>().unwrap();
    let grads: Vec<Vec<f32>> = layer
        .named_parameters()
        .iter()
        .map(|(name, p)| {
            let g = p
                .grad()
                .unwrap_or_else(|| panic!("{what}: {name} has no gradient"));
            assert_eq!(g.dims(), p.value().dims(), "{what}: {name} gradient shape");
            g.to_vec::<f32>().unwrap()
        })
        .collect();

    let objective = |layer: &mut dyn Module, x: &Tensor| {
        let _no_grad = no_grad();
        hold_counters(layer);
        dot(&layer.forward(x).unwrap(), &r)
    };

    check(
        &format!("{what}: dx"),
        &pick(x.len(), dev, seed + 1),
        &dx,
        fd_x,
        |j| {
            central_diff(x, j, fd_x.h, |v| {
                let xv = Tensor::from_slice(v, shape, dev).unwrap();
                objective(layer, &xv)
            })
        },
    );

    let values = param_values(layer);
    let xd = xt.detach();
    for (k, ((name, v0), g)) in values.iter().zip(&grads).enumerate() {
        let idx = pick(v0.len(), dev, seed + 2 + k as u64);
        check(&format!("{what}: d{name}"), &idx, g, fd_p, |j| {
            central_diff(v0, j, fd_p.h, |v| {
                set_param(layer, k, v, dev);
                objective(layer, &xd)
            })
        });
        set_param(layer, k, v0, dev);
    }
}
