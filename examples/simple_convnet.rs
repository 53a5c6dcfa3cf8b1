//! Trains the book's ch.7 `SimpleConvNet` on MNIST (the book: 98.96 % test accuracy).
//!
//! ```text
//! cargo run --release --example simple_convnet -- --epochs 20
//! ```

use clap::Parser;
use wgnn::cli::{TrainArgs, run_mnist};
use wgnn::models::simple_convnet;

/// Train SimpleConvNet on MNIST.
#[derive(Parser)]
#[command(about)]
struct Args {
    #[command(flatten)]
    train: TrainArgs,
}

fn main() {
    let args = Args::parse();
    if let Err(e) = run_mnist(&args.train, "simple_convnet", simple_convnet) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
