//! The six optimizers against a hand-written f64 implementation of the book's
//! `common/optimizer.py` formulas (with its default hyper-parameters), on the CPU and on every
//! GPU adapter: three updates with a different, fixed gradient each, L2 weight decay on
//! `decay` parameters only, and parameters without a gradient left alone.
//!
//! Tolerance. The device computes in f32 what the reference computes in f64 from the same f32
//! inputs (weights, gradients and hyper-parameters, all converted exactly). Per update, the
//! step Δ is a handful of f32 operations (products, a square root, a division, the state
//! update: Adam's longest chain is about six), each rounding by at most u = 2⁻²⁴ relatively
//! (a GPU's sqrt and division by up to ~2.5 ulp), and adding it to w rounds once more, by at
//! most u·|w|. Velocity and squared-gradient state carries its own earlier rounding along,
//! still relative to the size of the steps. So after t updates the error is at most about
//! u·(t·max|w| + c·Σ|Δ|) with c ≲ 12; the test allows 4u·max|w| + 24u·Σ|Δ| per element: a
//! few ulps of w, while a wrong formula (a missing (1 + m), an uncorrected Adam step, eps in
//! the wrong place) moves w by a sizeable fraction of Δ.

mod common;

use std::sync::Once;
use wgnn::nn::Param;
use wgnn::optim::Optimizer;
use wgnn::rng::SplitMix64;
use wgnn::{DType, Device, Tensor};

/// Unit roundoff of f32.
const U: f64 = f32::EPSILON as f64 / 2.0;
const STEPS: usize = 3;
/// Parameter shape (24 elements; the first four get special gradients, see [`grads`]).
const SHAPE: [usize; 2] = [4, 6];

// The book's defaults (common/optimizer.py), as the device sees them (f32).
const LR: f32 = 0.01;
const MOMENTUM: f32 = 0.9;
const RMS_DECAY: f32 = 0.99;
const ADAM_LR: f32 = 0.001;
const BETA1: f32 = 0.9;
const BETA2: f32 = 0.999;
const EPS: f32 = 1e-7;
/// The book's ch.6 weight-decay λ.
const LAMBDA: f32 = 0.1;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Rule {
    Sgd,
    Momentum,
    Nesterov,
    AdaGrad,
    RmsProp,
    Adam,
}

const RULES: [Rule; 6] = [
    Rule::Sgd,
    Rule::Momentum,
    Rule::Nesterov,
    Rule::AdaGrad,
    Rule::RmsProp,
    Rule::Adam,
];

impl Rule {
    fn name(self) -> &'static str {
        match self {
            Rule::Sgd => "sgd",
            Rule::Momentum => "momentum",
            Rule::Nesterov => "nesterov",
            Rule::AdaGrad => "adagrad",
            Rule::RmsProp => "rmsprop",
            Rule::Adam => "adam",
        }
    }

    /// The optimizer with the book's defaults, built explicitly.
    fn optimizer(self) -> Optimizer {
        match self {
            Rule::Sgd => Optimizer::sgd(LR),
            Rule::Momentum => Optimizer::momentum(LR, MOMENTUM),
            Rule::Nesterov => Optimizer::nesterov(LR, MOMENTUM),
            Rule::AdaGrad => Optimizer::adagrad(LR),
            Rule::RmsProp => Optimizer::rmsprop(LR, RMS_DECAY),
            Rule::Adam => Optimizer::adam(ADAM_LR, BETA1, BETA2),
        }
    }

    fn has_state(self) -> bool {
        self != Rule::Sgd
    }
}

/// The book's optimizers in f64, one parameter, written from `common/optimizer.py`.
struct Reference {
    rule: Rule,
    weight_decay: f64,
    iter: i32,
    /// v (Momentum, Nesterov), h (AdaGrad, RMSprop) or m (Adam).
    s1: Vec<f64>,
    /// Adam's v.
    s2: Vec<f64>,
}

impl Reference {
    fn new(rule: Rule, n: usize, weight_decay: f32) -> Reference {
        Reference {
            rule,
            weight_decay: weight_decay as f64,
            iter: 0,
            s1: vec![0.0; n],
            s2: vec![0.0; n],
        }
    }

    /// One update of `w` with gradient `grad`; returns |Δw| per element.
    fn step(&mut self, w: &mut [f64], grad: &[f32]) -> Vec<f64> {
        let (lr, m, rho, eps) = (LR as f64, MOMENTUM as f64, RMS_DECAY as f64, EPS as f64);
        let (alr, b1, b2) = (ADAM_LR as f64, BETA1 as f64, BETA2 as f64);
        self.iter += 1;
        let lr_t = alr * (1.0 - b2.powi(self.iter)).sqrt() / (1.0 - b1.powi(self.iter));
        let mut delta = Vec::with_capacity(w.len());
        for i in 0..w.len() {
            // The book's MultiLayerNet adds λ·W to the gradient of every weight.
            let g = grad[i] as f64 + self.weight_decay * w[i];
            let before = w[i];
            match self.rule {
                Rule::Sgd => w[i] -= lr * g,
                Rule::Momentum => {
                    self.s1[i] = m * self.s1[i] - lr * g;
                    w[i] += self.s1[i];
                }
                Rule::Nesterov => {
                    self.s1[i] *= m;
                    self.s1[i] -= lr * g;
                    w[i] += m * m * self.s1[i];
                    w[i] -= (1.0 + m) * lr * g;
                }
                Rule::AdaGrad => {
                    self.s1[i] += g * g;
                    w[i] -= lr * g / (self.s1[i].sqrt() + eps);
                }
                Rule::RmsProp => {
                    self.s1[i] *= rho;
                    self.s1[i] += (1.0 - rho) * g * g;
                    w[i] -= lr * g / (self.s1[i].sqrt() + eps);
                }
                Rule::Adam => {
                    self.s1[i] += (1.0 - b1) * (g - self.s1[i]);
                    self.s2[i] += (1.0 - b2) * (g * g - self.s2[i]);
                    w[i] -= lr_t * self.s1[i] / (self.s2[i].sqrt() + eps);
                }
            }
            delta.push((w[i] - before).abs());
        }
        delta
    }
}

/// Initial weights: N(0, 0.5²).
fn initial_weights(seed: u64) -> Vec<f32> {
    let mut rng = SplitMix64::new(seed);
    (0..SHAPE[0] * SHAPE[1])
        .map(|_| 0.5 * rng.next_normal() as f32)
        .collect()
}

/// The gradient of update `step`: N(0, 1), except element 0 is always 0 (AdaGrad's h stays
/// 0, so only eps keeps the division finite), element 1 is ±1e-6 (√h is then comparable to
/// eps = 1e-7, which therefore matters), element 2 is ±25 and element 3 flips sign every step.
fn grads(step: usize, seed: u64) -> Vec<f32> {
    let mut rng = SplitMix64::new(seed ^ (0x9E37 * (step as u64 + 1)));
    let mut g: Vec<f32> = (0..SHAPE[0] * SHAPE[1])
        .map(|_| rng.next_normal() as f32)
        .collect();
    let sign = if step.is_multiple_of(2) { 1.0 } else { -1.0 };
    g[0] = 0.0;
    g[1] = sign * 1e-6;
    g[2] = -sign * 25.0;
    g[3] = sign * 0.75;
    g
}

/// Device weights vs the reference within the tolerance of the module comment.
/// `max_w` and `sum_delta` are tracked per element over the updates so far.
fn compare(what: &str, got: &[f32], want: &[f64], max_w: &[f64], sum_delta: &[f64]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for i in 0..got.len() {
        let tol = 4.0 * U * max_w[i] + 24.0 * U * sum_delta[i];
        let err = (got[i] as f64 - want[i]).abs();
        assert!(
            err <= tol,
            "{what}: element {i}: got {}, want {} (|diff| {err:e} > tol {tol:e})",
            got[i],
            want[i]
        );
    }
}

/// A reference parameter with the running bounds the tolerance needs.
struct Tracked {
    w: Vec<f64>,
    reference: Reference,
    max_w: Vec<f64>,
    sum_delta: Vec<f64>,
}

impl Tracked {
    fn new(rule: Rule, w0: &[f32], weight_decay: f32) -> Tracked {
        let w: Vec<f64> = w0.iter().map(|&x| x as f64).collect();
        Tracked {
            max_w: w.iter().map(|x| x.abs()).collect(),
            sum_delta: vec![0.0; w.len()],
            reference: Reference::new(rule, w.len(), weight_decay),
            w,
        }
    }

    fn step(&mut self, g: &[f32]) {
        let d = self.reference.step(&mut self.w, g);
        for (s, d) in self.sum_delta.iter_mut().zip(d) {
            *s += d;
        }
        for (m, w) in self.max_w.iter_mut().zip(&self.w) {
            *m = m.max(w.abs());
        }
    }

    fn check(&self, what: &str, p: &Param) {
        compare(
            what,
            &p.value().to_vec::<f32>().unwrap(),
            &self.w,
            &self.max_w,
            &self.sum_delta,
        );
    }
}

fn param(w: &[f32], decay: bool, dev: &Device) -> Param {
    Param::new(Tensor::from_slice(w, SHAPE, dev).unwrap(), decay).unwrap()
}

fn grad_tensor(g: &[f32], dev: &Device) -> Option<Tensor> {
    Some(Tensor::from_slice(g, SHAPE, dev).unwrap())
}

/// Announces each device once per test binary.
fn devices() -> Vec<Device> {
    static ANNOUNCE: Once = Once::new();
    let devs = common::all_devices();
    ANNOUNCE.call_once(|| {
        for dev in &devs {
            println!("optim: the six optimizers vs the f64 book formulas on {dev}");
        }
    });
    devs
}

#[test]
fn book_rules_three_steps() {
    for dev in devices() {
        for (r, rule) in RULES.into_iter().enumerate() {
            let seed = 10 + r as u64;
            let w0 = initial_weights(seed);
            let mut p = param(&w0, true, &dev);
            let mut opt = rule.optimizer();
            let mut want = Tracked::new(rule, &w0, 0.0);
            for step in 0..STEPS {
                let g = grads(step, seed);
                p.set_grad(grad_tensor(&g, &dev)).unwrap();
                opt.step([("fc1.weight".to_string(), &mut p)]).unwrap();
                want.step(&g);
                want.check(&format!("{} step {} on {dev}", rule.name(), step + 1), &p);
            }
            assert_eq!(opt.steps(), STEPS as u64, "{}: update count", rule.name());
        }
    }
}

#[test]
fn weight_decay_only_on_decay_params() {
    for dev in devices() {
        for (r, rule) in RULES.into_iter().enumerate() {
            let seed = 20 + r as u64;
            let w0 = initial_weights(seed);
            // Same start, same gradients: only the decay flag differs.
            let mut weight = param(&w0, true, &dev);
            let mut bias = param(&w0, false, &dev);
            let mut opt = rule.optimizer().with_weight_decay(LAMBDA);
            let mut want_w = Tracked::new(rule, &w0, LAMBDA);
            let mut want_b = Tracked::new(rule, &w0, 0.0);
            for step in 0..STEPS {
                let g = grads(step, seed);
                weight.set_grad(grad_tensor(&g, &dev)).unwrap();
                bias.set_grad(grad_tensor(&g, &dev)).unwrap();
                opt.step([
                    ("fc1.weight".to_string(), &mut weight),
                    ("fc1.bias".to_string(), &mut bias),
                ])
                .unwrap();
                want_w.step(&g);
                want_b.step(&g);
                let what = format!("{} + weight decay, step {} on {dev}", rule.name(), step + 1);
                want_w.check(&format!("{what}, decay param"), &weight);
                want_b.check(&format!("{what}, no-decay param"), &bias);
            }
            // The decay term must have made a visible difference (it is ≥ 1e-6 here while
            // the tolerance is ~1e-7).
            let (a, b) = (
                weight.value().to_vec::<f32>().unwrap(),
                bias.value().to_vec::<f32>().unwrap(),
            );
            let diff = common::max_abs_diff(&a, &b);
            assert!(
                diff > 1e-6,
                "{} on {dev}: weight decay changed nothing (max diff {diff})",
                rule.name()
            );
        }
    }
}

#[test]
fn param_without_grad_is_untouched() {
    for dev in devices() {
        for (r, rule) in RULES.into_iter().enumerate() {
            let seed = 30 + r as u64;
            let w0 = initial_weights(seed);
            let mut trained = param(&w0, true, &dev);
            let mut idle = param(&w0, true, &dev);
            let mut opt = rule.optimizer().with_weight_decay(LAMBDA);
            let mut want = Tracked::new(rule, &w0, LAMBDA);
            for step in 0..STEPS {
                let g = grads(step, seed);
                trained.set_grad(grad_tensor(&g, &dev)).unwrap();
                opt.step([
                    ("fc2.weight".to_string(), &mut idle),
                    ("fc1.weight".to_string(), &mut trained),
                ])
                .unwrap();
                want.step(&g);
                let what = format!("{} step {} on {dev}", rule.name(), step + 1);
                want.check(&format!("{what}, param with a gradient"), &trained);
                let bits: Vec<u32> = idle
                    .value()
                    .to_vec::<f32>()
                    .unwrap()
                    .iter()
                    .map(|x| x.to_bits())
                    .collect();
                let bits0: Vec<u32> = w0.iter().map(|x| x.to_bits()).collect();
                assert_eq!(bits, bits0, "{what}: a param without gradient changed");
                assert!(idle.grad().is_none(), "{what}: grad appeared");
            }
            let names: Vec<String> = opt.state().into_iter().map(|(n, _)| n).collect();
            assert!(
                !names.iter().any(|n| n.starts_with("fc2.weight.")),
                "{} on {dev}: state created for a param without gradient: {names:?}",
                rule.name()
            );
            assert_eq!(
                names.iter().any(|n| n.starts_with("fc1.weight.")),
                rule.has_state(),
                "{} on {dev}: state of the trained param: {names:?}",
                rule.name()
            );
        }
    }
}

/// `Optimizer::by_name(name, None)` is the book's defaults: bit-identical updates to the
/// explicitly built optimizer (CPU only; the formulas are checked above).
#[test]
fn by_name_uses_the_book_defaults() {
    let dev = Device::Cpu;
    for (r, rule) in RULES.into_iter().enumerate() {
        let seed = 40 + r as u64;
        let w0 = initial_weights(seed);
        let mut a = param(&w0, true, &dev);
        let mut b = param(&w0, true, &dev);
        let mut oa = rule.optimizer();
        let mut ob = Optimizer::by_name(&rule.name().to_uppercase(), None).unwrap();
        for step in 0..STEPS {
            let g = grads(step, seed);
            a.set_grad(grad_tensor(&g, &dev)).unwrap();
            b.set_grad(grad_tensor(&g, &dev)).unwrap();
            oa.step([("w".to_string(), &mut a)]).unwrap();
            ob.step([("w".to_string(), &mut b)]).unwrap();
        }
        assert_eq!(
            a.value().to_vec::<f32>().unwrap(),
            b.value().to_vec::<f32>().unwrap(),
            "{}: by_name defaults differ from the book's",
            rule.name()
        );
        assert_eq!(oa.kind(), ob.kind());
        let lr = Optimizer::by_name(rule.name(), Some(0.5)).unwrap().lr();
        assert_eq!(lr, 0.5, "{}: by_name learning-rate override", rule.name());
    }
    assert!(Optimizer::by_name("lbfgs", None).is_err());
}

/// AdamW against its f64 formula (PyTorch's `AdamW`): decay on the weight, not in the moments,
/// and not on parameters without decay.
#[test]
fn adamw_decouples_the_weight_decay() {
    let (lr, b1, b2, wd, eps) = (0.01f64, 0.9f64, 0.999f64, 0.1f64, 1e-7f64);
    for dev in devices() {
        let w0 = initial_weights(50);
        let mut weight = param(&w0, true, &dev);
        let mut bias = param(&w0, false, &dev);
        let mut opt = Optimizer::adamw(lr as f32, b1 as f32, b2 as f32, wd as f32);
        let mut w: Vec<f64> = w0.iter().map(|&x| x as f64).collect();
        let mut b = w.clone();
        let (mut m, mut v) = (vec![0.0f64; w.len()], vec![0.0f64; w.len()]);
        let (mut mb, mut vb) = (m.clone(), v.clone());
        for step in 0..STEPS {
            let g = grads(step, 50);
            weight.set_grad(grad_tensor(&g, &dev)).unwrap();
            bias.set_grad(grad_tensor(&g, &dev)).unwrap();
            opt.step([("w".to_string(), &mut weight), ("b".to_string(), &mut bias)])
                .unwrap();
            let t = (step + 1) as i32;
            let lr_t = lr * (1.0 - b2.powi(t)).sqrt() / (1.0 - b1.powi(t));
            for (decay, w, m, v) in [
                (wd, &mut w, &mut m, &mut v),
                (0.0, &mut b, &mut mb, &mut vb),
            ] {
                for i in 0..w.len() {
                    let gi = g[i] as f64;
                    m[i] += (1.0 - b1) * (gi - m[i]);
                    v[i] += (1.0 - b2) * (gi * gi - v[i]);
                    w[i] = w[i] * (1.0 - lr * decay) - lr_t * m[i] / (v[i].sqrt() + eps);
                }
            }
        }
        for (what, p, want) in [("weight", &weight, &w), ("bias", &bias, &b)] {
            let got = p.value().to_vec::<f32>().unwrap();
            for (i, (&g, &e)) in got.iter().zip(want.iter()).enumerate() {
                assert!(
                    (g as f64 - e).abs() <= 1e-6 + 1e-5 * e.abs(),
                    "AdamW {what} on {dev}: element {i}: {g} vs {e}"
                );
            }
        }
        let (a, c) = (
            weight.value().to_vec::<f32>().unwrap(),
            bias.value().to_vec::<f32>().unwrap(),
        );
        assert!(
            common::max_abs_diff(&a, &c) > 1e-5,
            "{dev}: decay had no effect"
        );
    }
}

/// Clipping by global norm on the device: [3, 4] and [12] have norm 13.
#[test]
fn clip_grad_norm_scales_all_gradients_together() {
    use wgnn::optim::clip_grad_norm;
    let mut devs = vec![Device::Cpu];
    devs.extend(common::fresh_gpus()); // own counters: the readback check below
    for dev in devs {
        let mut a = Param::new(Tensor::zeros([2], DType::F32, &dev).unwrap(), true).unwrap();
        let mut b = Param::new(Tensor::zeros([1], DType::F32, &dev).unwrap(), true).unwrap();
        let mut idle = Param::new(Tensor::zeros([3], DType::F32, &dev).unwrap(), true).unwrap();
        let set = |a: &Param, b: &Param| {
            a.set_grad(Some(Tensor::from_slice(&[3.0f32, 4.0], [2], &dev).unwrap()))
                .unwrap();
            b.set_grad(Some(Tensor::from_slice(&[12.0f32], [1], &dev).unwrap()))
                .unwrap();
        };
        set(&a, &b);
        dev.sync().unwrap();
        let before = dev.counters();
        let norm = clip_grad_norm(
            [
                ("a".to_string(), &mut a),
                ("b".to_string(), &mut b),
                ("idle".to_string(), &mut idle),
            ],
            6.5,
        )
        .unwrap()
        .expect("a norm");
        dev.flush().unwrap();
        assert_eq!(
            dev.counters().since(&before).bytes_read_back,
            0,
            "{dev}: a readback"
        );
        assert!((norm.item().unwrap() - 13.0).abs() < 1e-5, "{dev}");
        let ga = a.grad().unwrap().to_vec::<f32>().unwrap();
        let gb = b.grad().unwrap().to_vec::<f32>().unwrap();
        common::assert_close(&format!("clipped on {dev}"), &ga, &[1.5, 2.0], 1e-6, 1e-6);
        common::assert_close(&format!("clipped on {dev}"), &gb, &[6.0], 1e-6, 1e-6);
        assert!(idle.grad().is_none());
        // Under the limit: unchanged.
        set(&a, &b);
        clip_grad_norm(
            [("a".to_string(), &mut a), ("b".to_string(), &mut b)],
            100.0,
        )
        .unwrap();
        let ga = a.grad().unwrap().to_vec::<f32>().unwrap();
        common::assert_close(&format!("unclipped on {dev}"), &ga, &[3.0, 4.0], 1e-6, 1e-6);
        assert!(
            clip_grad_norm([("idle".to_string(), &mut idle)], 1.0)
                .unwrap()
                .is_none()
        );
        assert!(clip_grad_norm([("a".to_string(), &mut a)], 0.0).is_err());
    }
}

/// A multi-tensor step (one dispatch per seven parameters on a GPU) updates eleven parameters
/// of different sizes, some with weight decay, exactly as the CPU updates each in turn, for
/// every rule (AdamW too), and records ⌈11 / 7⌉ = 2 dispatches per step where the adapter
/// allows the kernel's 29 storage bindings.
#[test]
fn multi_tensor_step_matches_the_cpu_and_takes_two_dispatches() {
    let sizes = [1usize, 7, 24, 300, 5, 64, 1000, 2, 33, 256, 17];
    let gpus = common::fresh_gpus(); // own counters
    let kinds = [
        "sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw",
    ];
    for (r, kind) in kinds.into_iter().enumerate() {
        let run = |dev: &Device| -> (Vec<Vec<f32>>, u64) {
            let mut params: Vec<Param> = sizes
                .iter()
                .enumerate()
                .map(|(i, &n)| {
                    let mut rng = SplitMix64::new(500 + i as u64);
                    let w: Vec<f32> = (0..n).map(|_| rng.next_f64() as f32 - 0.5).collect();
                    Param::new(Tensor::from_slice(&w, [n], dev).unwrap(), i % 3 != 0).unwrap()
                })
                .collect();
            let mut opt = Optimizer::by_name(kind, None)
                .unwrap()
                .with_weight_decay(LAMBDA);
            let mut dispatches = 0;
            for step in 0..STEPS {
                for (i, p) in params.iter().enumerate() {
                    let mut rng = SplitMix64::new(900 + (10 * step + i) as u64 + r as u64);
                    let g: Vec<f32> = (0..sizes[i]).map(|_| rng.next_f64() as f32 - 0.5).collect();
                    p.set_grad(Some(Tensor::from_slice(&g, [sizes[i]], dev).unwrap()))
                        .unwrap();
                }
                dev.sync().unwrap();
                let before = dev.counters();
                opt.step(
                    params
                        .iter_mut()
                        .enumerate()
                        .map(|(i, p)| (format!("p{i}"), p)),
                )
                .unwrap();
                dispatches = dev.counters().since(&before).dispatches;
            }
            let values = params
                .iter()
                .map(|p| p.value().to_vec::<f32>().unwrap())
                .collect();
            (values, dispatches)
        };
        let (want, _) = run(&Device::Cpu);
        for dev in &gpus {
            let (got, dispatches) = run(dev);
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                common::assert_close(&format!("{kind} p{i} on {dev}"), g, w, 1e-6, 1e-5);
            }
            let ctx = dev.gpu_context().expect("a GPU");
            let expect = if ctx.max_storage_buffers_per_stage() >= 29 {
                2
            } else {
                sizes.len() as u64
            };
            assert_eq!(dispatches, expect, "{kind} on {dev}: dispatches per step");
        }
    }
}
