//! Trains the book's deep VGG-like net (ch.8 `DeepConvNet`) on MNIST: Adam lr 0.001,
//! batch 100, 20 epochs by default, on a GPU if there is one, else on the CPU.
//!
//! ```text
//! cargo run --release --example vgg_like                          # the book's run
//! cargo run --release --example vgg_like -- --device cpu --epochs 1
//! cargo run --release --example vgg_like -- --device gpu --train-limit 2000 --epochs 1
//! ```

use clap::Parser;
use wgnn::cli::{TrainArgs, run_mnist};
use wgnn::models::deep_convnet;

/// Train DeepConvNet on MNIST.
#[derive(Parser)]
#[command(about)]
struct Args {
    #[command(flatten)]
    train: TrainArgs,
}

fn main() {
    let args = Args::parse();
    if let Err(e) = run_mnist(&args.train, "vgg_like (DeepConvNet)", deep_convnet) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
