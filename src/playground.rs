//! The model behind a Neural Network Playground (TensorFlow's, which the seed material points
//! to): two-dimensional data sets, the input features computed from a point, a small fully
//! connected network trained by wgnn, and the pictures such a page draws — the output's heat
//! map over the plane and one per neuron. A page or a test drives it step by step.
//!
//! ```
//! use wgnn::playground::{Config, Playground};
//! # fn main() -> wgnn::Result<()> {
//! let cfg = Config { data: "xor".into(), features: vec!["x1".into(), "x2".into(), "x1x2".into()],
//!                    ..Config::default() };
//! let mut p = Playground::new(&cfg, &wgnn::Device::cpu())?;
//! for _ in 0..20 {
//!     p.step()?; // one epoch: every training point once, an update every batch
//! }
//! let (train, test) = p.losses()?;
//! assert!(test < 0.1, "{train} {test}");
//! let maps = p.heat_maps(20)?; // the output's and every neuron's values on a 20×20 grid
//! assert_eq!(maps.output.len(), 400);
//! # Ok(()) }
//! ```

use crate::autograd::no_grad;
use crate::device::Device;
use crate::error::{Error, Result};
use crate::nn::{Linear, Module, ModuleExt, Param};
use crate::optim::Optimizer;
use crate::rng::SplitMix64;
use crate::tensor::Tensor;

/// Half the side of the square the points and the heat maps cover: `[-6, 6]²`.
pub const DOMAIN: f32 = 6.0;

/// The data sets: four classifications (labels ±1) and a regression (values in `[-1, 1]`).
pub const DATA_SETS: [&str; 5] = ["circle", "xor", "gauss", "spiral", "plane"];
/// The input features a point offers.
pub const FEATURES: [&str; 7] = ["x1", "x2", "x1^2", "x2^2", "x1x2", "sin(x1)", "sin(x2)"];
/// The activations of the hidden layers.
pub const ACTIVATIONS: [&str; 4] = ["relu", "tanh", "sigmoid", "linear"];

/// A labelled point of the plane.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point {
    /// First coordinate.
    pub x: f32,
    /// Second coordinate.
    pub y: f32,
    /// +1 or −1 (classification), or a value in `[-1, 1]` (regression).
    pub label: f32,
}

/// `n` points of the data set `name` (one of [`DATA_SETS`]) with `noise` in `[0, 0.5]`, from
/// `seed`. Every set keeps its points within `[-6, 6]²`:
/// - `circle`: half the points within radius 2.5 of the origin (+1), half in the ring from 3.5
///   to 5 (−1);
/// - `xor`: uniform in the square of side 10, kept 0.3 from the axes, labelled by the sign of
///   `x·y`;
/// - `gauss`: two round clusters around (2, 2) (+1) and (−2, −2) (−1), their spread growing
///   with the noise;
/// - `spiral`: two interleaved arms of 1.75 turns out to radius 5;
/// - `plane`: uniform in the square, the value `(x + y) / 12`.
///
/// Noise then moves each coordinate by up to `noise · 5` (gauss: widens the clusters), so
/// the labels of noisy points overlap as a page's slider would show.
pub fn generate(name: &str, n: usize, noise: f32, seed: u64) -> Result<Vec<Point>> {
    if !(0.0..=0.5).contains(&noise) {
        return Err(Error::invalid(
            "noise",
            format!("{noise}: must be in [0, 0.5]"),
        ));
    }
    let mut r = SplitMix64::new(seed);
    let mut u = |lo: f32, hi: f32| lo + (hi - lo) * r.next_f64() as f32;
    let mut pts = Vec::with_capacity(n);
    for i in 0..n {
        let positive = i % 2 == 0;
        let label = if positive { 1.0 } else { -1.0 };
        let (x, y, label) = match name {
            "circle" => {
                let radius = if positive { u(0.0, 2.5) } else { u(3.5, 5.0) };
                let angle = u(0.0, std::f32::consts::TAU);
                (radius * angle.sin(), radius * angle.cos(), label)
            }
            "xor" => {
                let away = |v: f32| v + if v > 0.0 { 0.3 } else { -0.3 };
                let (x, y) = (away(u(-4.7, 4.7)), away(u(-4.7, 4.7)));
                (x, y, if x * y >= 0.0 { 1.0 } else { -1.0 })
            }
            "gauss" => {
                let c = if positive { 2.0 } else { -2.0 };
                let spread = 0.5 + 3.0 * noise;
                let (a, b) = (u(0.0, 1.0).max(f32::MIN_POSITIVE), u(0.0, 1.0));
                let rad = spread * (-2.0 * a.ln()).sqrt();
                let t = std::f32::consts::TAU * b;
                (c + rad * t.cos(), c + rad * t.sin(), label)
            }
            "spiral" => {
                let k = (i / 2) as f32 / (n / 2).max(1) as f32;
                let radius = 5.0 * k;
                let t = 1.75 * std::f32::consts::TAU * k
                    + if positive { 0.0 } else { std::f32::consts::PI };
                (radius * t.sin(), radius * t.cos(), label)
            }
            "plane" => {
                let (x, y) = (u(-DOMAIN, DOMAIN), u(-DOMAIN, DOMAIN));
                (x, y, (x + y) / (2.0 * DOMAIN))
            }
            other => {
                return Err(Error::invalid(
                    "data",
                    format!("{other:?}: one of {}", DATA_SETS.join(", ")),
                ));
            }
        };
        let jitter = if name == "gauss" { 0.0 } else { noise * 5.0 };
        let clamp = |v: f32| v.clamp(-DOMAIN, DOMAIN);
        pts.push(Point {
            x: clamp(x + u(-jitter, jitter)),
            y: clamp(y + u(-jitter, jitter)),
            label,
        });
    }
    Ok(pts)
}

/// The value of the input feature `name` (one of [`FEATURES`]) at `(x, y)`.
pub fn feature(name: &str, x: f32, y: f32) -> Result<f32> {
    Ok(match name {
        "x1" => x,
        "x2" => y,
        "x1^2" => x * x,
        "x2^2" => y * y,
        "x1x2" => x * y,
        "sin(x1)" => x.sin(),
        "sin(x2)" => y.sin(),
        other => {
            return Err(Error::invalid(
                "features",
                format!("{other:?}: one of {}", FEATURES.join(", ")),
            ));
        }
    })
}

/// Everything a page sets: TensorFlow Playground's controls.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// One of [`DATA_SETS`].
    pub data: String,
    /// Points in the data set (both parts together), 20 to 2,000.
    pub points: usize,
    /// Noise in `[0, 0.5]`.
    pub noise: f32,
    /// The share of the points trained on, in `[0.1, 0.9]`; the rest are the test points.
    pub train_ratio: f32,
    /// Points per update, 1 to 30.
    pub batch_size: usize,
    /// The input features (at least one of [`FEATURES`], each once).
    pub features: Vec<String>,
    /// Neurons per hidden layer: 0 to 6 layers of 1 to 8.
    pub hidden: Vec<usize>,
    /// The hidden layers' activation, one of [`ACTIVATIONS`].
    pub activation: String,
    /// SGD's learning rate, in `(0, 10]`.
    pub learning_rate: f32,
    /// `none`, `l1` or `l2`.
    pub regularization: String,
    /// The regularization rate, in `[0, 10]`.
    pub regularization_rate: f32,
    /// Seed of the data and of the weights.
    pub seed: u64,
}

impl Default for Config {
    /// TensorFlow Playground's opening state: circle, no noise, half the points for
    /// training, batch 10, features x₁ and x₂, hidden layers of 4 and 2 tanh neurons,
    /// learning rate 0.03, no regularization.
    fn default() -> Config {
        Config {
            data: "circle".into(),
            points: 500,
            noise: 0.0,
            train_ratio: 0.5,
            batch_size: 10,
            features: vec!["x1".into(), "x2".into()],
            hidden: vec![4, 2],
            activation: "tanh".into(),
            learning_rate: 0.03,
            regularization: "none".into(),
            regularization_rate: 0.0,
            seed: 0,
        }
    }
}

impl Config {
    /// Checks every setting; the error names the first one out of range and its allowed
    /// values (a page shows it as is).
    pub fn validate(&self) -> Result<()> {
        let bad =
            |name: &str, why: String| Err(Error::invalid("playground", format!("{name}: {why}")));
        if !DATA_SETS.contains(&self.data.as_str()) {
            return bad(
                "data",
                format!("{:?} is not one of {}", self.data, DATA_SETS.join(", ")),
            );
        }
        if !(20..=2000).contains(&self.points) {
            return bad("points", format!("{} is not in 20..=2000", self.points));
        }
        if !(0.0..=0.5).contains(&self.noise) {
            return bad("noise", format!("{} is not in [0, 0.5]", self.noise));
        }
        if !(0.1..=0.9).contains(&self.train_ratio) {
            return bad(
                "train_ratio",
                format!("{} is not in [0.1, 0.9]", self.train_ratio),
            );
        }
        if !(1..=30).contains(&self.batch_size) {
            return bad(
                "batch_size",
                format!("{} is not in 1..=30", self.batch_size),
            );
        }
        if self.features.is_empty() {
            return bad("features", "at least one feature is needed".into());
        }
        for (i, f) in self.features.iter().enumerate() {
            if !FEATURES.contains(&f.as_str()) {
                return bad(
                    "features",
                    format!("{f:?} is not one of {}", FEATURES.join(", ")),
                );
            }
            if self.features[..i].contains(f) {
                return bad("features", format!("{f:?} appears twice"));
            }
        }
        if self.hidden.len() > 6 {
            return bad("hidden", format!("{} layers; at most 6", self.hidden.len()));
        }
        if let Some(&n) = self.hidden.iter().find(|n| !(1..=8).contains(*n)) {
            return bad("hidden", format!("a layer of {n} neurons; 1 to 8 each"));
        }
        if !ACTIVATIONS.contains(&self.activation.as_str()) {
            return bad(
                "activation",
                format!(
                    "{:?} is not one of {}",
                    self.activation,
                    ACTIVATIONS.join(", ")
                ),
            );
        }
        if !(self.learning_rate > 0.0 && self.learning_rate <= 10.0) {
            return bad(
                "learning_rate",
                format!("{} is not in (0, 10]", self.learning_rate),
            );
        }
        if !["none", "l1", "l2"].contains(&self.regularization.as_str()) {
            return bad(
                "regularization",
                format!("{:?} is not one of none, l1, l2", self.regularization),
            );
        }
        if !(0.0..=10.0).contains(&self.regularization_rate) {
            return bad(
                "regularization_rate",
                format!("{} is not in [0, 10]", self.regularization_rate),
            );
        }
        Ok(())
    }

    /// A regression set: the output is linear, not tanh.
    pub fn is_regression(&self) -> bool {
        self.data == "plane"
    }
}

/// The network's values over a grid of the plane (row-major, `y` from +6 down to −6, `x`
/// from −6 to +6, as a picture): the output's, and each hidden neuron's by layer.
#[derive(Clone, Debug, PartialEq)]
pub struct HeatMaps {
    /// Points per side.
    pub resolution: usize,
    /// The output at each grid point.
    pub output: Vec<f32>,
    /// `neurons[layer][neuron]`: that neuron's activation at each grid point.
    pub neurons: Vec<Vec<Vec<f32>>>,
}

/// A playground: its data, its network and its training state.
pub struct Playground {
    cfg: Config,
    layers: Vec<Linear>,
    opt: Optimizer,
    train: Vec<Point>,
    test: Vec<Point>,
    epoch: usize,
    dev: Device,
}

impl Playground {
    /// The data set and a fresh network for `cfg` on `dev`: weights uniform in ±0.5 and
    /// biases 0.1 (TensorFlow Playground's start), from `cfg.seed`.
    pub fn new(cfg: &Config, dev: &Device) -> Result<Playground> {
        cfg.validate()?;
        let mut pts = generate(&cfg.data, cfg.points, cfg.noise, cfg.seed)?;
        // Shuffle, then split: the first part trains.
        let mut r = SplitMix64::new(cfg.seed ^ 0x5EED);
        for i in (1..pts.len()).rev() {
            pts.swap(i, r.below(i as u64 + 1) as usize);
        }
        let n_train =
            ((pts.len() as f32 * cfg.train_ratio).round() as usize).clamp(1, pts.len() - 1);
        let test = pts.split_off(n_train);
        let mut widths = vec![cfg.features.len()];
        widths.extend(&cfg.hidden);
        widths.push(1);
        let mut seeds = SplitMix64::new(cfg.seed.wrapping_add(1));
        let mut layers = Vec::new();
        for w in widths.windows(2) {
            let mut l = Linear::new(w[0], w[1], dev)?;
            for (name, p) in l.named_parameters() {
                let dims = p.value().dims().to_vec();
                let v = match name.as_str() {
                    "weight" => Tensor::rand_uniform(dims, -0.5, 0.5, seeds.next_u64(), dev)?,
                    _ => Tensor::full_like(p.value(), 0.1)?,
                };
                p.set_value(v)?;
            }
            layers.push(l);
        }
        Ok(Playground {
            cfg: cfg.clone(),
            layers,
            opt: Optimizer::sgd(cfg.learning_rate),
            train: pts,
            test,
            epoch: 0,
            dev: dev.clone(),
        })
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Epochs trained.
    pub fn epoch(&self) -> usize {
        self.epoch
    }

    /// The training points and the test points.
    pub fn points(&self) -> (&[Point], &[Point]) {
        (&self.train, &self.test)
    }

    /// The features of `pts` as `[n, features]`.
    fn inputs(&self, pts: impl Iterator<Item = (f32, f32)>) -> Result<Tensor> {
        let mut v = Vec::new();
        let mut n = 0;
        for (x, y) in pts {
            for f in &self.cfg.features {
                v.push(feature(f, x, y)?);
            }
            n += 1;
        }
        Tensor::from_vec(v, [n, self.cfg.features.len()], &self.dev)
    }

    fn activate(&self, z: Tensor) -> Result<Tensor> {
        match self.cfg.activation.as_str() {
            "relu" => z.relu(),
            "tanh" => z.tanh(),
            "sigmoid" => z.sigmoid(),
            _ => Ok(z),
        }
    }

    /// The network on `x` `[n, features]`: every hidden layer's activations, then the output
    /// `[n, 1]` (tanh for classification, linear for regression).
    fn forward(&mut self, x: &Tensor) -> Result<(Vec<Tensor>, Tensor)> {
        let last = self.layers.len() - 1;
        let mut hidden = Vec::new();
        let mut h = x.clone();
        for i in 0..last {
            let z = self.layers[i].forward(&h)?;
            h = self.activate(z)?;
            hidden.push(h.clone());
        }
        let out = self.layers[last].forward(&h)?;
        let out = if self.cfg.is_regression() {
            out
        } else {
            out.tanh()?
        };
        Ok((hidden, out))
    }

    /// `0.5 · mean((output − label)²)` over `pts`.
    fn loss_of(&mut self, pts: &[Point]) -> Result<Tensor> {
        let x = self.inputs(pts.iter().map(|p| (p.x, p.y)))?;
        let labels: Vec<f32> = pts.iter().map(|p| p.label).collect();
        let t = Tensor::from_vec(labels, [pts.len(), 1], &self.dev)?;
        let (_, out) = self.forward(&x)?;
        let d = out.sub(&t)?;
        d.mul(&d)?.mean()?.mul_scalar(0.5)
    }

    /// One epoch: the training points in order, an SGD update after every batch on the batch's
    /// mean squared error plus the regularization of the weights (`rate·Σ|w|` or
    /// `rate·½Σw²`).
    pub fn step(&mut self) -> Result<()> {
        let batches: Vec<Vec<Point>> = self
            .train
            .chunks(self.cfg.batch_size)
            .map(|c| c.to_vec())
            .collect();
        for batch in batches {
            let mut loss = self.loss_of(&batch)?;
            let rate = self.cfg.regularization_rate;
            if self.cfg.regularization != "none" && rate > 0.0 {
                for l in &self.layers {
                    let w = l.weight().value();
                    let penalty = match self.cfg.regularization.as_str() {
                        "l1" => w.abs()?.sum()?,
                        _ => w.mul(w)?.sum()?.mul_scalar(0.5)?,
                    };
                    loss = loss.add(&penalty.mul_scalar(rate)?)?;
                }
            }
            for l in &mut self.layers {
                l.zero_grad();
            }
            loss.backward()?;
            let params: Vec<(String, &mut Param)> = self
                .layers
                .iter_mut()
                .enumerate()
                .flat_map(|(i, l)| {
                    l.named_parameters()
                        .into_iter()
                        .map(move |(n, p)| (format!("{i}.{n}"), p))
                })
                .collect();
            self.opt.step(params)?;
        }
        self.epoch += 1;
        Ok(())
    }

    /// The training and the test loss, `0.5 · mean((output − label)²)` each.
    pub fn losses(&mut self) -> Result<(f64, f64)> {
        let _guard = no_grad();
        let (train, test) = (self.train.clone(), self.test.clone());
        let a = self.loss_of(&train)?;
        let b = self.loss_of(&test)?;
        let v = Tensor::read_scalars(&[&a, &b])?;
        Ok((v[0], v[1]))
    }

    /// The output's and every hidden neuron's values on a `resolution`² grid over
    /// `[-6, 6]²` (2 to 200 points a side).
    pub fn heat_maps(&mut self, resolution: usize) -> Result<HeatMaps> {
        if !(2..=200).contains(&resolution) {
            return Err(Error::invalid(
                "resolution",
                format!("{resolution} is not in 2..=200"),
            ));
        }
        let _guard = no_grad();
        let step = 2.0 * DOMAIN / (resolution - 1) as f32;
        let grid = (0..resolution * resolution).map(|i| {
            let (row, col) = (i / resolution, i % resolution);
            (-DOMAIN + col as f32 * step, DOMAIN - row as f32 * step)
        });
        let x = self.inputs(grid)?;
        let (hidden, out) = self.forward(&x)?;
        let g = resolution * resolution;
        let mut neurons = Vec::with_capacity(hidden.len());
        for h in &hidden {
            let width = h.dims()[1];
            let v = h.to_vec::<f32>()?;
            neurons.push(
                (0..width)
                    .map(|j| (0..g).map(|i| v[i * width + j]).collect())
                    .collect(),
            );
        }
        Ok(HeatMaps {
            resolution,
            output: out.to_vec::<f32>()?,
            neurons,
        })
    }

    /// Each layer's weights `[in][out]` (what a page draws as lines between neurons).
    pub fn weights(&self) -> Result<Vec<Vec<Vec<f32>>>> {
        self.layers
            .iter()
            .map(|l| {
                let w = l.weight().value();
                let (fan_in, fan_out) = (w.dims()[0], w.dims()[1]);
                let v = w.to_vec::<f32>()?;
                Ok((0..fan_in)
                    .map(|i| v[i * fan_out..(i + 1) * fan_out].to_vec())
                    .collect())
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_sets_are_labelled_within_the_domain_and_repeat_per_seed() {
        for name in DATA_SETS {
            let a = generate(name, 200, 0.2, 7).unwrap();
            assert_eq!(a, generate(name, 200, 0.2, 7).unwrap(), "{name}");
            assert_ne!(a, generate(name, 200, 0.2, 8).unwrap(), "{name}");
            assert!(a.iter().all(|p| p.x.abs() <= DOMAIN && p.y.abs() <= DOMAIN));
            if name == "plane" {
                assert!(a.iter().all(|p| p.label.abs() <= 1.0));
            } else {
                let pos = a.iter().filter(|p| p.label == 1.0).count();
                assert!(a.iter().all(|p| p.label.abs() == 1.0), "{name}");
                assert!((80..=120).contains(&pos), "{name}: {pos} of 200 positive");
            }
        }
        // Without noise the circle's classes are separated by radius.
        for p in generate("circle", 100, 0.0, 1).unwrap() {
            let r = (p.x * p.x + p.y * p.y).sqrt();
            assert_eq!(p.label > 0.0, r <= 2.5 + 1e-4, "{p:?}");
        }
        assert!(generate("moons", 10, 0.0, 0).is_err());
        assert!(generate("xor", 10, 0.7, 0).is_err());
    }

    #[test]
    fn bad_settings_name_the_setting() {
        let cases: Vec<(Config, &str)> = vec![
            (
                Config {
                    data: "moons".into(),
                    ..Config::default()
                },
                "data",
            ),
            (
                Config {
                    points: 5,
                    ..Config::default()
                },
                "points",
            ),
            (
                Config {
                    noise: 0.9,
                    ..Config::default()
                },
                "noise",
            ),
            (
                Config {
                    train_ratio: 0.0,
                    ..Config::default()
                },
                "train_ratio",
            ),
            (
                Config {
                    batch_size: 0,
                    ..Config::default()
                },
                "batch_size",
            ),
            (
                Config {
                    features: vec![],
                    ..Config::default()
                },
                "features",
            ),
            (
                Config {
                    features: vec!["x3".into()],
                    ..Config::default()
                },
                "features",
            ),
            (
                Config {
                    features: vec!["x1".into(), "x1".into()],
                    ..Config::default()
                },
                "features",
            ),
            (
                Config {
                    hidden: vec![1; 7],
                    ..Config::default()
                },
                "hidden",
            ),
            (
                Config {
                    hidden: vec![9],
                    ..Config::default()
                },
                "hidden",
            ),
            (
                Config {
                    activation: "gelu".into(),
                    ..Config::default()
                },
                "activation",
            ),
            (
                Config {
                    learning_rate: f32::NAN,
                    ..Config::default()
                },
                "learning_rate",
            ),
            (
                Config {
                    regularization: "l3".into(),
                    ..Config::default()
                },
                "regularization",
            ),
            (
                Config {
                    regularization_rate: -1.0,
                    ..Config::default()
                },
                "regularization_rate",
            ),
        ];
        for (cfg, name) in cases {
            let m = cfg.validate().expect_err(name).to_string();
            assert!(m.contains(name), "{name}: {m}");
            assert!(Playground::new(&cfg, &Device::cpu()).is_err(), "{name}");
        }
        Config::default().validate().unwrap();
    }
}
