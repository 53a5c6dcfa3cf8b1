//! The book's ch.6 over-fitting experiments (`overfit_weight_decay.py`, `overfit_dropout.py`):
//! a 784-100×6-10 ReLU MLP trained on only 300 MNIST images (SGD lr 0.01, batch 100) for 201
//! epochs, with no regularisation, with weight decay λ = 0.1 (L2 on the weights, not the
//! biases) and with dropout 0.2. After each epoch the accuracy on those 300 images and on the
//! 10,000 test images is measured (evaluation mode). The book's finding: unregularised, the
//! net reaches 100 % on its training images while the test accuracy stalls far below; weight
//! decay and dropout narrow the gap (book, with decay: train 0.93, test 0.72 at epoch 201).
//!
//! ```text
//! cargo run --release --example overfit -- --device cpu --plot overfit.png
//! ```

use clap::Parser;
use std::path::PathBuf;
use wgnn::data::{DeviceDataset, Mnist, default_data_dir};
use wgnn::models::{MlpConfig, mlp};
use wgnn::nn::cross_entropy;
use wgnn::optim::Optimizer;
use wgnn::plot::{LineChart, Series};
use wgnn::train::{evaluate, train_epoch};
use wgnn::{Device, Error};

/// Over-fitting on 300 images, and what weight decay and dropout do about it.
#[derive(Parser)]
#[command(about)]
struct Args {
    /// Device: cpu, gpu, gpu:N or auto.
    #[arg(long, default_value = "auto", env = "WGNN_DEVICE")]
    device: String,
    /// Seed for the initial weights, dropout masks and shuffling.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Epochs.
    #[arg(long, default_value_t = 201)]
    epochs: usize,
    /// Training images (the first N of MNIST's training set).
    #[arg(long, default_value_t = 300)]
    train_size: usize,
    /// Weight decay λ of the regularised run.
    #[arg(long, default_value_t = 0.1)]
    weight_decay: f32,
    /// Dropout ratio of the dropout run.
    #[arg(long, default_value_t = 0.2)]
    dropout: f32,
    /// Directory with the MNIST files.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Draw the train and test accuracy curves into this PNG file.
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
            "overfit",
            format!("--epochs must be ≥ 1 and --train-size ≥ {BATCH} (one batch)"),
        ));
    }
    let device = Device::from_spec(&args.device)?;
    println!("overfit on {device}");
    let mnist = Mnist::load(&args.data_dir.clone().unwrap_or_else(default_data_dir))?;
    let train = DeviceDataset::from_mnist(&mnist.train.take(args.train_size), &device)?;
    let test = DeviceDataset::from_mnist(&mnist.test, &device)?;
    let sizes = [784, 100, 100, 100, 100, 100, 100, 10];
    let runs: [(String, MlpConfig, f32); 3] = [
        ("none".into(), MlpConfig::new(&sizes), 0.0),
        (
            format!("weight decay {}", args.weight_decay),
            MlpConfig::new(&sizes),
            args.weight_decay,
        ),
        (
            format!("dropout {}", args.dropout),
            MlpConfig {
                dropout: Some(args.dropout),
                ..MlpConfig::new(&sizes)
            },
            0.0,
        ),
    ];
    let mut curves = Vec::new();
    for (name, cfg, lambda) in runs {
        let mut model = mlp(&cfg, &device, args.seed)?;
        let mut opt = Optimizer::by_name("sgd", Some(0.01))?.with_weight_decay(lambda);
        let (mut tr, mut te) = (Vec::new(), Vec::new());
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
            let e = (epoch + 1) as f64;
            tr.push((e, evaluate(&mut model, &train, BATCH)?));
            te.push((e, evaluate(&mut model, &test, 500)?));
        }
        let (a, b) = (tr[tr.len() - 1].1, te[te.len() - 1].1);
        println!(
            "{name:>18}: after {} epochs train {a:.3}, test {b:.3} (gap {:.3})",
            args.epochs,
            a - b
        );
        curves.push((name, tr, te));
    }
    println!();
    println!("| epoch | {} |", {
        let cols: Vec<String> = curves
            .iter()
            .map(|(n, _, _)| format!("{n}: train / test"))
            .collect();
        cols.join(" | ")
    });
    println!("|---|{}", "---|".repeat(curves.len()));
    let mut shown: Vec<usize> = (0..args.epochs).step_by(25.max(args.epochs / 8)).collect();
    if shown.last() != Some(&(args.epochs - 1)) {
        shown.push(args.epochs - 1);
    }
    for i in shown {
        let row: Vec<String> = curves
            .iter()
            .map(|(_, tr, te)| format!("{:.3} / {:.3}", tr[i].1, te[i].1))
            .collect();
        println!("| {} | {} |", i + 1, row.join(" | "));
    }
    if let Some(path) = &args.plot {
        let mut chart = LineChart {
            title: format!("over-fitting on {} images (book ch.6)", args.train_size),
            x_label: "epoch".into(),
            y_label: "accuracy".into(),
            y_range: Some((0.0, 1.02)),
            ..LineChart::default()
        };
        for (name, tr, te) in curves {
            for (kind, pts) in [("train", tr), ("test", te)] {
                chart.series.push(Series {
                    name: format!("{name}, {kind}"),
                    points: pts,
                    markers: false,
                    bars: false,
                    lines: true,
                });
            }
        }
        chart.save_png(path)?;
        println!("figure: {}", path.display());
    }
    Ok(())
}
