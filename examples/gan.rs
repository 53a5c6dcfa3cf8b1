//! d2l's toy GAN (ch. 20.1, "Generative Adversarial Networks"), exactly: 1,000 points
//! `X·A + b` of a Gaussian (`A = [[1, 2], [-0.1, 0.5]]`, `b = [1, 2]`, X standard normal), a
//! generator `Linear(2, 2)` and a discriminator `2 → 5 → 3 → 1` with tanh, every parameter
//! drawn from N(0, 0.02), binary cross-entropy with logits summed over the batch, Adam with lr
//! 0.05 for D and 0.005 for G, batches of 8, 20 epochs. Prints d2l's line `loss_D …, loss_G …,
//! … examples/sec` after each epoch, then the generated distribution's mean and covariance
//! beside the data's (`b` and `AᵀA`): the generator is linear, so for z ~ N(0, I) its output
//! `z·W + c` has mean `c` and covariance `WᵀW` exactly; 10,000 samples say the same.
//!
//! ```text
//! cargo run --release --example gan                          # seed 0, on the CPU
//! cargo run --release --example gan -- --seeds 0,1,2 --plots gan.png
//! ```
//!
//! `tests/gan.rs` includes this file and checks [`toy_gan`]'s figures.

use clap::Parser;
use std::path::PathBuf;
use std::time::Instant;
use wgnn::autograd::no_grad;
use wgnn::data::{DataLoader, TensorDataset};
use wgnn::nn::{Linear, Module, ModuleExt, Sequential, Tanh, bce_with_logits};
use wgnn::optim::Optimizer;
use wgnn::plot::{LineChart, Series};
use wgnn::prelude::*;

/// The data's linear map (d2l's `A`): data = X·A + b.
pub const A: [[f32; 2]; 2] = [[1.0, 2.0], [-0.1, 0.5]];
/// The data's offset (d2l's `b`).
pub const B: [f32; 2] = [1.0, 2.0];

/// d2l's toy GAN on a 2-D Gaussian: the mean and covariance the generator learns.
#[derive(Parser)]
#[command(about)]
struct Args {
    /// Device: cpu, gpu, gpu:N or auto.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Seeds to train with, comma-separated (each a whole run: data, weights, noise, order).
    #[arg(long, default_value = "0")]
    seeds: String,
    /// Passes over the 1,000 points.
    #[arg(long, default_value_t = 20)]
    epochs: usize,
    /// Points per batch.
    #[arg(long, default_value_t = 8)]
    batch_size: usize,
    /// The discriminator's Adam learning rate.
    #[arg(long, default_value_t = 0.05)]
    lr_d: f32,
    /// The generator's Adam learning rate.
    #[arg(long, default_value_t = 0.005)]
    lr_g: f32,
    /// A PNG of 100 real and 100 generated points of the first seed (d2l's figure).
    #[arg(long)]
    plots: Option<PathBuf>,
    /// Write the figures of every seed to this JSON file.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// A run's settings (d2l's by [`Config::default`]).
#[derive(Clone, Copy, Debug)]
pub struct Config {
    /// Passes over the data.
    pub epochs: usize,
    /// Points per batch.
    pub batch_size: usize,
    /// The discriminator's learning rate.
    pub lr_d: f32,
    /// The generator's learning rate.
    pub lr_g: f32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            epochs: 20,
            batch_size: 8,
            lr_d: 0.05,
            lr_g: 0.005,
        }
    }
}

/// What a run ends with.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The seed.
    pub seed: u64,
    /// The last epoch's mean losses per point (d2l's `loss_D`, `loss_G`).
    pub loss_d: f64,
    /// See `loss_d`.
    pub loss_g: f64,
    /// Training points per second over the run.
    pub examples_per_sec: f64,
    /// The generator's mean (its bias) and covariance (`WᵀW`), exactly.
    pub mean: [f64; 2],
    /// See `mean`.
    pub cov: [[f64; 2]; 2],
    /// The same from 10,000 generated points.
    pub sample_mean: [f64; 2],
    /// See `sample_mean`.
    pub sample_cov: [[f64; 2]; 2],
    /// `‖mean − b‖ / ‖b‖`.
    pub mean_err: f64,
    /// `‖cov − AᵀA‖_F / ‖AᵀA‖_F`.
    pub cov_err: f64,
    /// 100 real and 100 generated points, for the figure.
    pub real: Vec<(f64, f64)>,
    /// See `real`.
    pub fake: Vec<(f64, f64)>,
}

/// The data's covariance `AᵀA`.
pub fn data_cov() -> [[f64; 2]; 2] {
    let a = A.map(|r| r.map(f64::from));
    std::array::from_fn(|i| std::array::from_fn(|j| a[0][i] * a[0][j] + a[1][i] * a[1][j]))
}

/// Every parameter of `m` drawn from N(0, 0.02) (d2l's `normal_(0, 0.02)` on weights and
/// biases), seeds from the global generator.
fn normal_init(m: &mut dyn Module, dev: &Device) -> Result<()> {
    for (_, p) in m.named_parameters() {
        let dims = p.value().dims().to_vec();
        p.set_value((randn(dims, dev)? * 0.02)?)?;
    }
    Ok(())
}

/// Binary cross-entropy with logits summed over the batch (PyTorch's `reduction='sum'`).
fn bce_sum(logits: &Tensor, target: f32) -> Result<Tensor> {
    let t = Tensor::full(logits.dims(), target, &logits.device())?;
    bce_with_logits(logits, &t)? * logits.numel() as f32
}

/// Mean and covariance (divided by n − 1) of `n` points `[x, y, x, y, …]`.
fn moments(v: &[f32]) -> ([f64; 2], [[f64; 2]; 2]) {
    let n = (v.len() / 2) as f64;
    let mut m = [0f64; 2];
    for p in v.chunks_exact(2) {
        m[0] += p[0] as f64 / n;
        m[1] += p[1] as f64 / n;
    }
    let mut c = [[0f64; 2]; 2];
    for p in v.chunks_exact(2) {
        let d = [p[0] as f64 - m[0], p[1] as f64 - m[1]];
        for (i, row) in c.iter_mut().enumerate() {
            for (j, cij) in row.iter_mut().enumerate() {
                *cij += d[i] * d[j] / (n - 1.0);
            }
        }
    }
    (m, c)
}

/// `‖a − b‖ / ‖b‖` over all elements.
fn rel_err(a: &[f64], b: &[f64]) -> f64 {
    let diff: f64 = a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum();
    let norm: f64 = b.iter().map(|y| y * y).sum();
    (diff / norm).sqrt()
}

/// d2l's generator, `Linear(2, 2)` (PyTorch's `nn.Sequential(nn.Linear(2, 2))`).
pub fn generator(dev: &Device) -> Result<Sequential> {
    Sequential::new().add("0", Linear::new(2, 2, dev)?)
}

/// d2l's discriminator, `2 → 5 → 3 → 1` with tanh between, a logit out.
pub fn discriminator(dev: &Device) -> Result<Sequential> {
    Sequential::new()
        .add("0", Linear::new(2, 5, dev)?)?
        .add("1", Tanh)?
        .add("2", Linear::new(5, 3, dev)?)?
        .add("3", Tanh)?
        .add("4", Linear::new(3, 1, dev)?)
}

/// One iteration on the batch `real` with noise `z`: d2l's `update_D` (real points towards 1,
/// generated ones, cut from G, towards 0; the mean of the two summed losses), then
/// `update_G` (the generated points towards 1 through the updated D). Returns the two losses.
pub fn update(
    g: &mut Sequential,
    d: &mut Sequential,
    opt_g: &mut Optimizer,
    opt_d: &mut Optimizer,
    real: &Tensor,
    z: &Tensor,
) -> Result<(f32, f32)> {
    d.zero_grad();
    let fake = g.forward(z)?;
    let l_d =
        ((bce_sum(&d.forward(real)?, 1.0)? + bce_sum(&d.forward(&fake.detach())?, 0.0)?)? * 0.5)?;
    l_d.backward()?;
    opt_d.step(d.named_parameters())?;
    g.zero_grad();
    let l_g = bce_sum(&d.forward(&g.forward(z)?)?, 1.0)?;
    l_g.backward()?;
    opt_g.step(g.named_parameters())?;
    Ok((l_d.item()?, l_g.item()?))
}

/// Trains d2l's toy GAN with `seed` on `dev`; `verbose` prints d2l's line after each epoch.
pub fn toy_gan(seed: u64, cfg: &Config, dev: &Device, verbose: bool) -> Result<Outcome> {
    manual_seed(seed);
    let x = randn([1000, 2], dev)?;
    let a = Tensor::from_slice(&A.concat(), [2, 2], dev)?;
    let data = (x.matmul(&a)? + Tensor::from_slice(&B, [2], dev)?)?;
    let (mut g, mut d) = (generator(dev)?, discriminator(dev)?);
    normal_init(&mut g, dev)?;
    normal_init(&mut d, dev)?;
    let mut opt_d = Optimizer::adam(cfg.lr_d, 0.9, 0.999).with_torch_eps(1e-8);
    let mut opt_g = Optimizer::adam(cfg.lr_g, 0.9, 0.999).with_torch_eps(1e-8);
    let set = TensorDataset::new(vec![data.clone()])?;
    let mut loader = DataLoader::new(&set, cfg.batch_size)?.shuffle(seed);
    let (mut loss_d, mut loss_g, mut seen) = (0f64, 0f64, 0usize);
    let start = Instant::now();
    for epoch in 0..cfg.epochs {
        let (mut sum_d, mut sum_g, mut n_epoch) = (0f64, 0f64, 0usize);
        for batch in loader.epoch() {
            let real = &batch?[0];
            let n = real.dims()[0];
            let z = randn([n, 2], dev)?;
            let (l_d, l_g) = update(&mut g, &mut d, &mut opt_g, &mut opt_d, real, &z)?;
            sum_d += l_d as f64;
            sum_g += l_g as f64;
            n_epoch += n;
        }
        seen += n_epoch;
        (loss_d, loss_g) = (sum_d / n_epoch as f64, sum_g / n_epoch as f64);
        if verbose {
            println!(
                "epoch {}/{}: loss_D {loss_d:.3}, loss_G {loss_g:.3}, {:.1} examples/sec",
                epoch + 1,
                cfg.epochs,
                seen as f64 / start.elapsed().as_secs_f64()
            );
        }
    }
    let examples_per_sec = seen as f64 / start.elapsed().as_secs_f64();
    let _guard = no_grad();
    // G(z) = z·W + c: mean c, covariance WᵀW.
    let (w, c): (Vec<f32>, Vec<f32>) = {
        let p = g.named_parameters();
        let get = |name: &str| -> Result<Vec<f32>> {
            let (_, p) = p
                .iter()
                .find(|(k, _)| k == name)
                .ok_or_else(|| Error::invalid("toy_gan", format!("no parameter {name}")))?;
            p.value().to_vec::<f32>()
        };
        (get("0.weight")?, get("0.bias")?)
    };
    let w = [[w[0] as f64, w[1] as f64], [w[2] as f64, w[3] as f64]];
    let mean = [c[0] as f64, c[1] as f64];
    let cov =
        std::array::from_fn(|i| std::array::from_fn(|j| w[0][i] * w[0][j] + w[1][i] * w[1][j]));
    let samples = g.forward(&randn([10_000, 2], dev)?)?.to_vec::<f32>()?;
    let (sample_mean, sample_cov) = moments(&samples);
    let want_cov = data_cov();
    let flat = |m: [[f64; 2]; 2]| m.concat();
    let points = |v: &[f32]| -> Vec<(f64, f64)> {
        v.chunks_exact(2)
            .take(100)
            .map(|p| (p[0] as f64, p[1] as f64))
            .collect()
    };
    Ok(Outcome {
        seed,
        loss_d,
        loss_g,
        examples_per_sec,
        mean,
        cov,
        sample_mean,
        sample_cov,
        mean_err: rel_err(&mean, &B.map(f64::from)),
        cov_err: rel_err(&flat(cov), &flat(want_cov)),
        real: points(&data.to_vec::<f32>()?),
        fake: points(&samples),
    })
}

/// `[[a, b], [c, d]]` as text.
fn mat(m: [[f64; 2]; 2]) -> String {
    format!(
        "[[{:.3}, {:.3}], [{:.3}, {:.3}]]",
        m[0][0], m[0][1], m[1][0], m[1][1]
    )
}

#[allow(dead_code)] // tests/gan.rs includes this file for `toy_gan`
fn main() -> Result<()> {
    let args = Args::parse();
    let dev = Device::from_spec(&args.device)?;
    let cfg = Config {
        epochs: args.epochs,
        batch_size: args.batch_size,
        lr_d: args.lr_d,
        lr_g: args.lr_g,
    };
    let seeds = wgnn::cli::parse_seeds("--seeds", &args.seeds)?;
    if let Some(path) = &args.plots {
        wgnn::cli::check_output_file("--plots", path)?;
    }
    if let Some(path) = &args.json {
        wgnn::cli::check_output_file("--json", path)?;
    }
    println!(
        "toy GAN on {dev}: 1000 points of X·A + b, G Linear(2, 2), D 2→5→3→1 (tanh), Adam lr_D \
         {}, lr_G {}, batch {}, {} epochs",
        cfg.lr_d, cfg.lr_g, cfg.batch_size, cfg.epochs
    );
    let mut outcomes = Vec::new();
    for &seed in &seeds {
        println!("seed {seed}:");
        let o = toy_gan(seed, &cfg, &dev, true)?;
        println!(
            "loss_D {:.3}, loss_G {:.3}, {:.1} examples/sec",
            o.loss_d, o.loss_g, o.examples_per_sec
        );
        outcomes.push(o);
    }
    let want = data_cov();
    println!(
        "\n| seed | mean (G's bias) | covariance (WᵀW) | 10,000 samples: mean, covariance | mean error | covariance error |"
    );
    println!("|---|---|---|---|---|---|");
    println!(
        "| data | [{:.3}, {:.3}] | {} | (b, AᵀA) | | |",
        B[0],
        B[1],
        mat(want)
    );
    for o in &outcomes {
        println!(
            "| {} | [{:.3}, {:.3}] | {} | [{:.3}, {:.3}], {} | {:.1} % | {:.1} % |",
            o.seed,
            o.mean[0],
            o.mean[1],
            mat(o.cov),
            o.sample_mean[0],
            o.sample_mean[1],
            mat(o.sample_cov),
            100.0 * o.mean_err,
            100.0 * o.cov_err
        );
    }
    if let (Some(path), Some(o)) = (&args.plots, outcomes.first()) {
        let chart = LineChart {
            title: format!("toy GAN, seed {}: real and generated points", o.seed),
            x_label: "x1".into(),
            y_label: "x2".into(),
            series: vec![
                Series::scatter("real", o.real.clone()),
                Series::scatter("generated", o.fake.clone()),
            ],
            y_range: None,
        };
        chart.save_png(path)?;
        println!("scatter plot: {}", path.display());
    }
    if let Some(path) = &args.json {
        let runs: Vec<String> = outcomes
            .iter()
            .map(|o| {
                format!(
                    "{{\"seed\": {}, \"loss_d\": {:.5}, \"loss_g\": {:.5}, \"examples_per_sec\": {:.1}, \
                     \"mean\": {:?}, \"cov\": {:?}, \"sample_mean\": {:?}, \"sample_cov\": {:?}, \
                     \"mean_err\": {:.5}, \"cov_err\": {:.5}}}",
                    o.seed,
                    o.loss_d,
                    o.loss_g,
                    o.examples_per_sec,
                    o.mean,
                    o.cov,
                    o.sample_mean,
                    o.sample_cov,
                    o.mean_err,
                    o.cov_err
                )
            })
            .collect();
        let text = format!(
            "{{\"device\": \"{dev}\", \"epochs\": {}, \"runs\": [{}]}}\n",
            cfg.epochs,
            runs.join(", ")
        );
        std::fs::write(path, text)
            .map_err(|e| Error::invalid("--json", format!("{}: {e}", path.display())))?;
    }
    Ok(())
}
