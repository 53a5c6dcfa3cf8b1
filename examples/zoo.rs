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
//! Models: `lenet` (28 px), `alexnet`, `vgg11` (channels / 4), `nin` (d2l: 224 px),
//! `googlenet`, `resnet18`, `densenet` (d2l: 96 px). `--resize N` for less: AlexNet and NiN
//! need at least 65 and 67, VGG-11 and DenseNet 32; `--resize 28` runs ResNet-18 and
//! GoogLeNet on the original images.

use clap::Parser;
use wgnn::cli::{TrainArgs, run_mnist};
use wgnn::models::{alexnet, densenet, googlenet, lenet, nin, resnet18, vgg11};
use wgnn::nn::Sequential;
use wgnn::{Device, Error, Result};

/// A model of the zoo with d2l's training setup.
struct Entry {
    name: &'static str,
    /// Builds the model for `size`×`size` inputs.
    build: fn(&Device, u64, usize) -> Result<Sequential>,
    lr: f32,
    batch_size: usize,
    /// d2l's input size (28: no resize).
    size: usize,
    /// d2l's printed result (where the issue quotes it), for the comparison line.
    d2l: &'static str,
}

fn lenet_28(dev: &Device, seed: u64, size: usize) -> Result<Sequential> {
    if size != 28 {
        return Err(Error::invalid(
            "lenet",
            format!("takes 28×28 inputs, not {size}×{size}"),
        ));
    }
    lenet(dev, seed)
}

fn vgg11_ratio4(dev: &Device, seed: u64, size: usize) -> Result<Sequential> {
    vgg11(dev, seed, size, 4)
}

const ZOO: [Entry; 7] = [
    Entry {
        name: "lenet",
        build: lenet_28,
        lr: 0.9,
        batch_size: 256,
        size: 28,
        d2l: "loss 0.469, train acc 0.823, test acc 0.779 (d2l 7.6, 10 epochs)",
    },
    Entry {
        name: "alexnet",
        build: alexnet,
        lr: 0.01,
        batch_size: 128,
        size: 224,
        d2l: "d2l 8.1 trains it 10 epochs at 224 px (lr 0.01, batch 128)",
    },
    Entry {
        name: "vgg11",
        build: vgg11_ratio4,
        lr: 0.05,
        batch_size: 128,
        size: 224,
        d2l: "test acc 0.920 (d2l 8.2, VGG-11 with channels / 4, 10 epochs at 224 px)",
    },
    Entry {
        name: "nin",
        build: nin,
        lr: 0.1,
        batch_size: 128,
        size: 224,
        d2l: "d2l 8.3 trains it 10 epochs at 224 px (lr 0.1, batch 128)",
    },
    Entry {
        name: "googlenet",
        build: googlenet,
        lr: 0.1,
        batch_size: 128,
        size: 96,
        d2l: "test acc 0.886 (d2l 8.4, 10 epochs at 96 px)",
    },
    Entry {
        name: "resnet18",
        build: resnet18,
        lr: 0.05,
        batch_size: 256,
        size: 96,
        d2l: "test acc 0.893 (d2l 8.6, 10 epochs at 96 px)",
    },
    Entry {
        name: "densenet",
        build: densenet,
        lr: 0.1,
        batch_size: 256,
        size: 96,
        d2l: "test acc 0.885 (d2l 8.7, 10 epochs at 96 px)",
    },
];

/// Train one of d2l's CNNs.
#[derive(Parser)]
#[command(
    about,
    mut_arg("optimizer", |a| a.default_value("sgd")),
    mut_arg("epochs", |a| a.default_value("10")),
    mut_arg("dataset", |a| a.default_value("fashion-mnist"))
)]
struct Args {
    /// The model: lenet, alexnet, vgg11 (d2l's channel ratio 4), nin, googlenet, resnet18,
    /// densenet.
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
    if entry.size != 28 {
        args.train.resize.get_or_insert(entry.size);
    }
    if args.train.resize == Some(28) {
        args.train.resize = None; // the images are 28 px already
    }
    let size = args.train.resize.unwrap_or(28);
    let build = |dev: &Device, seed: u64| (entry.build)(dev, seed, size);
    match run_mnist(&args.train, entry.name, build) {
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
