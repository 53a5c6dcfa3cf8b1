//! The book's ch.6 batch-normalisation experiment (`batch_norm_test.py`): a 784-100×5-10 ReLU
//! MLP trained on 1,000 MNIST images (SGD lr 0.01, batch 100, 20 epochs) with and without batch
//! normalisation, for 16 initial weight scales from 1 down to 0.0001 (log-spaced). After each
//! epoch the accuracy on those 1,000 images is measured. The book's finding: with batch norm
//! the net learns faster at almost every scale, and learns at all at scales where the plain
//! net does not.
//!
//! ```text
//! cargo run --release --example batch_norm_compare -- --device cpu --plot batch_norm.png
//! ```

use clap::Parser;
use std::path::PathBuf;
use wgnn::data::{DeviceDataset, Mnist, default_data_dir};
use wgnn::models::{MlpConfig, mlp};
use wgnn::nn::{Init, cross_entropy};
use wgnn::optim::Optimizer;
use wgnn::plot::{LineChart, Series, tile};
use wgnn::train::{evaluate, train_epoch};
use wgnn::{Device, Error};

/// Batch norm vs none at 16 weight scales.
#[derive(Parser)]
#[command(about)]
struct Args {
    /// Device: cpu, gpu, gpu:N or auto.
    #[arg(long, default_value = "auto", env = "WGNN_DEVICE")]
    device: String,
    /// Seed for the initial weights and shuffling.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Epochs per run.
    #[arg(long, default_value_t = 20)]
    epochs: usize,
    /// Training images (the first N of MNIST's training set).
    #[arg(long, default_value_t = 1000)]
    train_size: usize,
    /// Directory with the MNIST files.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Draw the 16 panels (training accuracy per epoch, with and without batch norm) into this
    /// PNG file.
    #[arg(long)]
    plot: Option<PathBuf>,
}

fn main() {
    if let Err(e) = run(Args::parse()) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run(args: Args) -> wgnn::Result<()> {
    const BATCH: usize = 100;
    if args.epochs == 0 || args.train_size < BATCH {
        return Err(Error::invalid(
            "batch_norm_compare",
            format!("--epochs must be ≥ 1 and --train-size ≥ {BATCH} (one batch)"),
        ));
    }
    let device = Device::from_spec(&args.device)?;
    println!("batch_norm_compare on {device}");
    let mnist = Mnist::load(&args.data_dir.clone().unwrap_or_else(default_data_dir))?;
    let train = DeviceDataset::from_mnist(&mnist.train.take(args.train_size), &device)?;
    let sizes = [784, 100, 100, 100, 100, 100, 10];
    println!(
        "| weight scale | plain: final train acc | batch norm: final train acc | epochs to 50 %: plain / BN |"
    );
    println!("|---|---|---|---|");
    let (mut panels, mut bn_faster) = (Vec::new(), 0);
    for i in 0..16 {
        let scale = 10f32.powf(-4.0 * i as f32 / 15.0); // numpy's logspace(0, -4, 16)
        let mut curves = Vec::new();
        for bn in [false, true] {
            let cfg = MlpConfig {
                init: Init::Std(scale),
                batch_norm: bn,
                ..MlpConfig::new(&sizes)
            };
            let mut model = mlp(&cfg, &device, args.seed)?;
            let mut opt = Optimizer::by_name("sgd", Some(0.01))?;
            let mut acc = Vec::new();
            for epoch in 0..args.epochs {
                train_epoch(
                    &mut model,
                    &cross_entropy,
                    &mut opt,
                    &train,
                    BATCH,
                    args.seed,
                    epoch,
                )?;
                acc.push(((epoch + 1) as f64, evaluate(&mut model, &train, BATCH)?));
            }
            curves.push(acc);
        }
        let to_half = |c: &[(f64, f64)]| {
            c.iter()
                .find(|p| p.1 >= 0.5)
                .map_or("–".to_string(), |p| format!("{}", p.0))
        };
        let area = |c: &[(f64, f64)]| c.iter().map(|p| p.1).sum::<f64>();
        if area(&curves[1]) > area(&curves[0]) {
            bn_faster += 1;
        }
        println!(
            "| {scale:.4} | {:.3} | {:.3} | {} / {} |",
            curves[0].last().map_or(0.0, |p| p.1),
            curves[1].last().map_or(0.0, |p| p.1),
            to_half(&curves[0]),
            to_half(&curves[1])
        );
        if args.plot.is_some() {
            let [plain, bn] = [curves[0].clone(), curves[1].clone()];
            let chart = LineChart {
                title: format!("W scale {scale:.4}"),
                x_label: "epoch".into(),
                y_label: "train accuracy".into(),
                series: vec![
                    Series {
                        name: "plain".into(),
                        points: plain,
                        markers: false,
                        bars: false,
                        lines: true,
                    },
                    Series {
                        name: "batch norm".into(),
                        points: bn,
                        markers: false,
                        bars: false,
                        lines: true,
                    },
                ],
                y_range: Some((0.0, 1.02)),
            };
            panels.push(chart.render(360, 260)?);
        }
    }
    println!(
        "batch norm learned faster (more accuracy summed over the epochs) at {bn_faster} of 16 scales"
    );
    if let Some(path) = &args.plot {
        tile(&panels, 4)?.save_png(path)?;
        println!("figure: {}", path.display());
    }
    Ok(())
}
