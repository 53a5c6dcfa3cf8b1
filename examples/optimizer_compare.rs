//! The book's ch.6 optimizer comparison (`optimizer_compare_mnist.py`): a 784-100×4-10 ReLU
//! MLP (He init) trained from the same initial weights with each of the six optimizers for
//! 2,000 iterations of batch 128 on MNIST, printing the loss table. The book's finding: SGD
//! learns slowest; AdaGrad, Adam and the momentum methods much faster.
//!
//! ```text
//! cargo run --release --example optimizer_compare -- --device cpu --plot optimizers.png
//! ```

use clap::Parser;
use std::path::PathBuf;
use wgnn::Device;
use wgnn::cli::{Contender, compare_runs};
use wgnn::data::{DeviceDataset, Mnist, default_data_dir};
use wgnn::models::{MlpConfig, mlp};
use wgnn::optim::Optimizer;

/// Compare SGD, Momentum, Nesterov, AdaGrad, RMSprop and Adam on an MLP.
#[derive(Parser)]
#[command(about)]
struct Args {
    /// Device: cpu, gpu, gpu:N or auto.
    #[arg(long, default_value = "auto", env = "WGNN_DEVICE")]
    device: String,
    /// Seed for the initial weights (shared by all optimizers) and the batches.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Iterations per optimizer.
    #[arg(long, default_value_t = 2000)]
    iterations: usize,
    /// Mini-batch size.
    #[arg(long, default_value_t = 128)]
    batch_size: usize,
    /// Rows of the table: the mean loss over each block of this many iterations.
    #[arg(long, default_value_t = 100)]
    every: usize,
    /// Directory with the MNIST files.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Write the loss table (and final test accuracies) as JSON here.
    #[arg(long)]
    metrics_out: Option<PathBuf>,
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
    println!("optimizer_compare on {device}");
    let mnist = Mnist::load(&args.data_dir.clone().unwrap_or_else(default_data_dir))?;
    let train = DeviceDataset::from_mnist(&mnist.train, &device)?;
    let test = DeviceDataset::from_mnist(&mnist.test, &device)?;
    let mut contenders = Vec::new();
    for name in ["sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam"] {
        contenders.push(Contender {
            name: name.into(),
            // The same initial weights for every optimizer.
            model: mlp(
                &MlpConfig::new(&[784, 100, 100, 100, 100, 10]),
                &device,
                args.seed,
            )?,
            opt: Optimizer::by_name(name, None)?,
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
        "mean training loss per {} iterations (784-100x4-10 ReLU MLP, batch {}):",
        args.every, args.batch_size
    );
    print!("{}", cmp.table());
    if let Some(path) = &args.plot {
        cmp.chart("optimizers on MNIST (book ch.6)")
            .save_png(path)?;
        println!("figure: {}", path.display());
    }
    if let Some(path) = &args.metrics_out {
        let json = serde_json::json!({ "device": device.to_string(), "comparison": cmp });
        std::fs::write(
            path,
            serde_json::to_string_pretty(&json).unwrap_or_default() + "\n",
        )
        .map_err(|e| wgnn::Error::io(path, e))?;
        println!("metrics written to {}", path.display());
    }
    Ok(())
}
