//! d2l's classic CNNs (*Dive into Deep Learning*, PyTorch version) on Fashion-MNIST, with d2l's
//! hyperparameters as each model's defaults: plain SGD, Xavier-uniform weights, 10 epochs.
//! The last lines are d2l's own (`loss …, train acc …, test acc …` and `… examples/sec on …`)
//! so the two can be read side by side.
//!
//! ```text
//! cargo run --release --example zoo -- --model lenet            # d2l 7.6: lr 0.9, batch 256
//! cargo run --release --example zoo -- --model lenet --dataset mnist --val-split 5000
//! ```
//!
//! Models so far: `lenet` (d2l prints loss 0.469, train acc 0.823, test acc 0.779).

use clap::Parser;
use wgnn::cli::{TrainArgs, run_mnist};
use wgnn::models::lenet;
use wgnn::nn::Sequential;
use wgnn::{Device, Result};

/// A model of the zoo with d2l's training setup.
struct Entry {
    name: &'static str,
    build: fn(&Device, u64) -> Result<Sequential>,
    lr: f32,
    batch_size: usize,
    /// d2l's printed result, for the comparison line.
    d2l: &'static str,
}

const ZOO: [Entry; 1] = [Entry {
    name: "lenet",
    build: lenet,
    lr: 0.9,
    batch_size: 256,
    d2l: "loss 0.469, train acc 0.823, test acc 0.779 (d2l 7.6, 10 epochs)",
}];

/// Train one of d2l's CNNs.
#[derive(Parser)]
#[command(
    about,
    mut_arg("optimizer", |a| a.default_value("sgd")),
    mut_arg("epochs", |a| a.default_value("10")),
    mut_arg("dataset", |a| a.default_value("fashion-mnist"))
)]
struct Args {
    /// The model: lenet.
    #[arg(long, default_value = "lenet")]
    model: String,
    #[command(flatten)]
    train: TrainArgs,
}

fn main() {
    let mut args = Args::parse();
    let Some(entry) = ZOO
        .iter()
        .find(|e| e.name == args.model.to_ascii_lowercase())
    else {
        let names: Vec<&str> = ZOO.iter().map(|e| e.name).collect();
        eprintln!(
            "error: unknown model \"{}\" (available: {})",
            args.model,
            names.join(", ")
        );
        std::process::exit(2);
    };
    args.train.lr.get_or_insert(entry.lr);
    args.train.batch_size.get_or_insert(entry.batch_size);
    match run_mnist(&args.train, entry.name, entry.build) {
        Ok(m) => {
            if let Some(last) = m.epochs.last() {
                println!(
                    "loss {:.3}, train acc {:.3}, test acc {:.3}",
                    last.train_loss, last.train_accuracy, m.test_accuracy
                );
            }
            println!("{:.1} examples/sec on {}", m.images_per_sec, m.device);
            println!("d2l: {}", entry.d2l);
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
