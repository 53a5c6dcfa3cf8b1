//! The book's ch.6 optimizer comparison (`optimizer_compare_mnist.py`): a 784-100×4-10 ReLU
//! MLP (He init) trained from the same initial weights with each of the six optimizers for
//! 2,000 iterations of batch 128 on MNIST, printing the loss table. The book's finding: SGD
//! learns slowest; AdaGrad, Adam and the momentum methods much faster.
//!
//! ```text
//! cargo run --release --example optimizer_compare -- --device cpu
//! ```

use clap::Parser;
use std::path::PathBuf;
use std::time::Instant;
use wgnn::data::{DeviceDataset, Mnist, default_data_dir};
use wgnn::models::{MlpConfig, mlp};
use wgnn::nn::cross_entropy;
use wgnn::optim::Optimizer;
use wgnn::train::{evaluate, train_step};
use wgnn::{DType, Device, Tensor};

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
}

fn main() {
    if let Err(e) = run(Args::parse()) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run(args: Args) -> wgnn::Result<()> {
    if args.every == 0 || args.batch_size == 0 || args.iterations == 0 {
        return Err(wgnn::Error::invalid(
            "optimizer_compare",
            "--every, --batch-size and --iterations must be positive",
        ));
    }
    let device = Device::from_spec(&args.device)?;
    println!("optimizer_compare on {device}");
    let mnist = Mnist::load(&args.data_dir.clone().unwrap_or_else(default_data_dir))?;
    let train = DeviceDataset::from_mnist(&mnist.train, &device)?;
    let test = DeviceDataset::from_mnist(&mnist.test, &device)?;
    let names = ["sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam"];
    let blocks = args.iterations.div_ceil(args.every);
    let mut table = vec![vec![0f64; names.len()]; blocks];
    let mut accuracy = Vec::new();
    for (j, name) in names.iter().enumerate() {
        let t0 = Instant::now();
        let mut model = mlp(
            &MlpConfig::new(&[784, 100, 100, 100, 100, 10]),
            &device,
            args.seed,
        )?;
        let mut opt = Optimizer::by_name(name, None)?;
        let mut epoch = 0;
        let mut order = train.shuffled(args.seed, epoch)?;
        let mut offset = 0;
        let mut block_sum = Tensor::zeros([1], DType::F32, &device)?;
        for it in 0..args.iterations {
            if offset + args.batch_size > train.len() {
                epoch += 1;
                order = train.shuffled(args.seed, epoch)?;
                offset = 0;
            }
            let (x, t) = train.batch(&order, offset, args.batch_size)?;
            offset += args.batch_size;
            let (loss, _) = train_step(&mut model, &cross_entropy, &mut opt, &x, &t)?;
            block_sum.axpy_(1.0, &loss)?;
            if (it + 1) % args.every == 0 || it + 1 == args.iterations {
                let n = (it % args.every + 1) as f64;
                table[it / args.every][j] = block_sum.item()? as f64 / n;
                block_sum.fill_(0.0)?;
            } else {
                device.flush()?;
            }
        }
        let acc = evaluate(&mut model, &test, 500)?;
        println!(
            "{name:>9}: {} iterations in {:.1} s, test accuracy {:.2}%",
            args.iterations,
            t0.elapsed().as_secs_f64(),
            100.0 * acc
        );
        accuracy.push(acc);
    }
    println!();
    println!(
        "mean training loss per {} iterations (784-100x4-10 ReLU MLP, batch {}):",
        args.every, args.batch_size
    );
    print!("| iterations |");
    names.iter().for_each(|n| print!(" {n:>8} |"));
    println!();
    print!("|---|");
    names.iter().for_each(|_| print!("---|"));
    println!();
    for (b, row) in table.iter().enumerate() {
        let end = ((b + 1) * args.every).min(args.iterations);
        print!("| {:>5}-{:<5} |", b * args.every + 1, end);
        row.iter().for_each(|v| print!(" {v:>8.4} |"));
        println!();
    }
    print!("| test acc    |");
    accuracy
        .iter()
        .for_each(|a| print!(" {:>7.2}% |", 100.0 * a));
    println!();
    if let Some(path) = &args.metrics_out {
        let json = serde_json::json!({
            "device": device.to_string(),
            "optimizers": names,
            "every": args.every,
            "mean_loss": table,
            "test_accuracy": accuracy,
        });
        std::fs::write(
            path,
            serde_json::to_string_pretty(&json).unwrap_or_default() + "\n",
        )
        .map_err(|e| wgnn::Error::io(path, e))?;
        println!("metrics written to {}", path.display());
    }
    Ok(())
}
