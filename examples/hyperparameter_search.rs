//! The book's ch.6 hyperparameter search (`hyperparameter_optimization.py`): random search of
//! the learning rate (10^U(-6, -2)) and weight decay (10^U(-8, -4)) for a 784-100×6-10 ReLU
//! MLP trained with SGD (batch 100, 50 epochs) on 400 MNIST images, judged on a validation
//! set of 100 more held out from the training set (the book's 500 images with 20 % for
//! validation). Prints the best trials and draws their validation accuracy per epoch. The
//! book's best trials reach about 0.8 validation accuracy with lr around 10^-2.
//!
//! ```text
//! cargo run --release --example hyperparameter_search -- --device cpu --plot search.png
//! ```

use clap::Parser;
use std::path::PathBuf;
use wgnn::data::{DeviceDataset, Mnist, default_data_dir};
use wgnn::models::{MlpConfig, mlp};
use wgnn::nn::cross_entropy;
use wgnn::optim::Optimizer;
use wgnn::plot::{LineChart, Series};
use wgnn::rng::SplitMix64;
use wgnn::train::{evaluate, train_epoch};
use wgnn::{Device, Error};

/// Random search of learning rate and weight decay on a validation split.
#[derive(Parser)]
#[command(about)]
struct Args {
    /// Device: cpu, gpu, gpu:N or auto.
    #[arg(long, default_value = "auto", env = "WGNN_DEVICE")]
    device: String,
    /// Seed for the search, the split, the weights and shuffling.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Trials.
    #[arg(long, default_value_t = 100)]
    trials: usize,
    /// Epochs per trial.
    #[arg(long, default_value_t = 50)]
    epochs: usize,
    /// Training images before the split (the first N of MNIST's training set).
    #[arg(long, default_value_t = 500)]
    train_size: usize,
    /// Of those, held out for validation.
    #[arg(long, default_value_t = 100)]
    val_size: usize,
    /// Best trials to print and draw.
    #[arg(long, default_value_t = 6)]
    top: usize,
    /// Directory with the MNIST files.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Draw the best trials' validation accuracy per epoch into this PNG file.
    #[arg(long)]
    plot: Option<PathBuf>,
}

fn main() {
    if let Err(e) = run(Args::parse()) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

/// One trial: its rates and validation accuracy per epoch.
struct Trial {
    lr: f32,
    decay: f32,
    val: Vec<(f64, f64)>,
}

fn run(args: Args) -> wgnn::Result<()> {
    const BATCH: usize = 100;
    if args.trials == 0 || args.epochs == 0 || args.top == 0 {
        return Err(Error::invalid(
            "hyperparameter_search",
            "--trials, --epochs and --top must be ≥ 1",
        ));
    }
    let device = Device::from_spec(&args.device)?;
    println!("hyperparameter_search on {device}");
    let mnist = Mnist::load(&args.data_dir.clone().unwrap_or_else(default_data_dir))?;
    let (rest, held) = mnist
        .train
        .take(args.train_size)
        .split_off_seeded(args.val_size, args.seed)?;
    if rest.n < BATCH {
        return Err(Error::invalid(
            "hyperparameter_search",
            format!(
                "{} training images after the split: need at least one batch of {BATCH}",
                rest.n
            ),
        ));
    }
    let train = DeviceDataset::from_mnist(&rest, &device)?;
    let val = DeviceDataset::from_mnist(&held, &device)?;
    println!(
        "{} trials of {} epochs, {} training and {} validation images",
        args.trials,
        args.epochs,
        train.len(),
        val.len()
    );
    let sizes = [784, 100, 100, 100, 100, 100, 100, 10];
    let mut rng = SplitMix64::new(args.seed);
    let mut trials = Vec::new();
    for k in 0..args.trials {
        let lr = 10f64.powf(rng.next_f64() * 4.0 - 6.0) as f32;
        let decay = 10f64.powf(rng.next_f64() * 4.0 - 8.0) as f32;
        let mut model = mlp(&MlpConfig::new(&sizes), &device, args.seed + k as u64)?;
        let mut opt = Optimizer::by_name("sgd", Some(lr))?.with_weight_decay(decay);
        let mut curve = Vec::new();
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
            curve.push(((epoch + 1) as f64, evaluate(&mut model, &val, BATCH)?));
        }
        let last = curve.last().map_or(0.0, |p| p.1);
        println!(
            "trial {:>3}: lr {lr:.2e}, weight decay {decay:.2e}: validation {last:.3}",
            k + 1
        );
        trials.push(Trial {
            lr,
            decay,
            val: curve,
        });
    }
    let final_acc = |t: &Trial| t.val.last().map_or(0.0, |p| p.1);
    trials.sort_by(|a, b| final_acc(b).total_cmp(&final_acc(a)));
    println!();
    println!("| rank | lr | weight decay | validation accuracy |");
    println!("|---|---|---|---|");
    for (r, t) in trials.iter().take(args.top).enumerate() {
        println!(
            "| {} | {:.2e} | {:.2e} | {:.3} |",
            r + 1,
            t.lr,
            t.decay,
            final_acc(t)
        );
    }
    if let Some(path) = &args.plot {
        let chart = LineChart {
            title: format!(
                "random search: best {} of {} trials (book ch.6)",
                args.top.min(trials.len()),
                args.trials
            ),
            x_label: "epoch".into(),
            y_label: "validation accuracy".into(),
            series: trials
                .iter()
                .take(args.top)
                .map(|t| Series {
                    name: format!("lr {:.1e}, decay {:.1e}", t.lr, t.decay),
                    points: t.val.clone(),
                    markers: false,
                    bars: false,
                    lines: true,
                })
                .collect(),
            y_range: Some((0.0, 1.02)),
        };
        chart.save_png(path)?;
        println!("figure: {}", path.display());
    }
    Ok(())
}
