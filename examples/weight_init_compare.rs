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
    Ok(())
}
