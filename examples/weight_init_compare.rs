//! The book's ch.6 weight-initialisation comparison (`weight_init_compare.py`): a
//! 784-100×4-10 ReLU MLP trained with plain SGD (lr 0.01, batch 128, 2,000 iterations) from
//! weights drawn with std 0.01, Xavier (std √(1/n)) and He (std √(2/n)), printing the loss
//! table and drawing the curves. The book's finding: with std 0.01 the net does not learn
//! (the loss stays near 2.30); He learns fastest, Xavier a little behind.
//!
//! ```text
//! cargo run --release --example weight_init_compare -- --device cpu --plot weight_init.png
//! ```

use clap::Parser;
use std::path::PathBuf;
use wgnn::Device;
use wgnn::cli::{Contender, compare_runs};
use wgnn::data::{DeviceDataset, Mnist, default_data_dir};
use wgnn::models::{MlpConfig, mlp};
use wgnn::nn::Init;
use wgnn::optim::Optimizer;

/// Compare weight initialisations on a 5-layer ReLU MLP.
#[derive(Parser)]
#[command(about)]
struct Args {
    /// Device: cpu, gpu, gpu:N or auto.
    #[arg(long, default_value = "auto", env = "WGNN_DEVICE")]
    device: String,
    /// Seed for the initial weights and the batches.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Iterations per initialisation.
    #[arg(long, default_value_t = 2000)]
    iterations: usize,
    /// Mini-batch size.
    #[arg(long, default_value_t = 128)]
    batch_size: usize,
    /// SGD learning rate.
    #[arg(long, default_value_t = 0.01)]
    lr: f32,
    /// Rows of the table: the mean loss over each block of this many iterations.
    #[arg(long, default_value_t = 100)]
    every: usize,
    /// Directory with the MNIST files.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Draw the loss curves into this PNG file.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Draw the book's activation histograms (`weight_init_activation_histogram.py`) into
    /// this PNG file: 1,000 random inputs through 5 layers of 100 units, per initialisation.
    #[arg(long)]
    histograms: Option<PathBuf>,
}

fn main() {
    if let Err(e) = run(Args::parse()) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run(args: Args) -> wgnn::Result<()> {
    let device = Device::from_spec(&args.device)?;
    println!("weight_init_compare on {device}");
    let mnist = Mnist::load(&args.data_dir.clone().unwrap_or_else(default_data_dir))?;
    let train = DeviceDataset::from_mnist(&mnist.train, &device)?;
    let test = DeviceDataset::from_mnist(&mnist.test, &device)?;
    let mut contenders = Vec::new();
    for (name, init) in [
        ("std=0.01", Init::Std(0.01)),
        ("Xavier", Init::Xavier),
        ("He", Init::He),
    ] {
        let cfg = MlpConfig {
            init,
            ..MlpConfig::new(&[784, 100, 100, 100, 100, 10])
        };
        contenders.push(Contender {
            name: name.into(),
            model: mlp(&cfg, &device, args.seed)?,
            opt: Optimizer::by_name("sgd", Some(args.lr))?,
        });
    }
    let cmp = compare_runs(
        contenders,
        &train,
        &test,
        args.iterations,
        args.batch_size,
        args.every,
        args.seed,
    )?;
    println!();
    println!(
        "mean training loss per {} iterations (784-100x4-10 ReLU MLP, SGD lr {}, batch {}):",
        args.every, args.lr, args.batch_size
    );
    print!("{}", cmp.table());
    if let Some(path) = &args.plot {
        cmp.chart("weight initialisation, ReLU MLP on MNIST (book ch.6)")
            .save_png(path)?;
        println!("figure: {}", path.display());
    }
    if let Some(path) = &args.histograms {
        histograms(path, args.seed)?;
    }
    Ok(())
}

/// The book's activation-distribution experiment: 1,000 inputs drawn from N(0, 1), 100
/// features, through 5 layers of 100 units (no bias) with each weight scale and activation;
/// a 30-bin histogram over [0, 1] of every layer's activations, one row per setting.
fn histograms(path: &std::path::Path, seed: u64) -> wgnn::Result<()> {
    use wgnn::plot::{LineChart, Series, tile};
    use wgnn::{Device, Tensor};
    let cpu = Device::cpu();
    let settings: [(&str, f32, bool); 4] = [
        ("std 1, sigmoid", 1.0, false),
        ("std 0.01, sigmoid", 0.01, false),
        ("Xavier, sigmoid", (1.0f32 / 100.0).sqrt(), false),
        ("He, ReLU", (2.0f32 / 100.0).sqrt(), true),
    ];
    let x0 = Tensor::randn([1000, 100], 0.0, 1.0, seed, &cpu)?;
    let mut panels = Vec::new();
    println!("\nstandard deviation of the activations, layers 1–5:");
    for (name, std, relu) in settings {
        let mut x = x0.clone();
        let mut row = Vec::new();
        for layer in 0..5 {
            let w = Tensor::randn([100, 100], 0.0, std, seed + 1 + layer as u64, &cpu)?;
            let a = x.matmul_t(&w, false, false)?;
            x = if relu { a.relu()? } else { a.sigmoid()? };
            let v = x.to_vec::<f32>()?;
            let mut counts = [0usize; 30];
            for &z in v.iter().filter(|z| (0.0..=1.0).contains(*z)) {
                counts[((z * 30.0) as usize).min(29)] += 1;
            }
            let mean = v.iter().map(|&z| z as f64).sum::<f64>() / v.len() as f64;
            let var = v.iter().map(|&z| (z as f64 - mean).powi(2)).sum::<f64>() / v.len() as f64;
            row.push(format!("{:.3}", var.sqrt()));
            let points = counts
                .iter()
                .enumerate()
                .map(|(b, &c)| ((b as f64 + 0.5) / 30.0, c as f64))
                .collect();
            let chart = LineChart {
                title: format!("{name}: layer {}", layer + 1),
                x_label: "activation".into(),
                y_label: "count".into(),
                series: vec![Series {
                    name: String::new(),
                    points,
                    markers: false,
                    bars: true,
                    lines: true,
                }],
                y_range: None,
            };
            panels.push(chart.render(300, 210)?);
        }
        println!("  {name:>18}: {}", row.join(", "));
    }
    tile(&panels, 5)?.save_png(path)?;
    println!("histograms: {}", path.display());
    Ok(())
}
