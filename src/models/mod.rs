//! The book's networks, and d2l's, built as [`Sequential`]s.

use crate::device::Device;
use crate::error::{Error, Result};
use crate::nn::{
    BatchNorm, Conv2d, Dropout, DropoutMode, Init, Linear, MaxPool2d, Relu, Sequential, Sigmoid,
};
use crate::rng::SplitMix64;

mod d2l;
pub mod dcgan;
mod rnn_lm;
pub use d2l::{
    DenseBlock, Inception, Residual, alexnet, densenet, googlenet, lenet, nin, resnet18, vgg11,
};
pub use rnn_lm::RnnLm;

/// The book's ch.8 `DeepConvNet` (the "VGG-like" net, 99.38 % on MNIST):
/// conv 16, 16 | pool | 32, 32 (the 4th with pad 2) | pool | 64, 64 | pool | Affine 1024→50,
/// ReLU, Dropout 0.5, Affine 50→10, Dropout 0.5 — 3×3 convs, He init, 123,552 parameters.
/// Input `[N, 1, 28, 28]`. The dropouts are the book's own form ([`DropoutMode::Book`]:
/// unscaled mask in training, × 0.5 in evaluation) so that training follows the book's run.
pub fn deep_convnet(device: &Device, seed: u64) -> Result<Sequential> {
    let mut seeds = SplitMix64::new(seed);
    let mut s = || seeds.next_u64();
    let conv =
        |cin, cout, pad, seed| Conv2d::with_init(cin, cout, 3, 1, pad, Init::He, seed, device);
    Sequential::new()
        .add("conv1", conv(1, 16, 1, s())?)?
        .add("relu1", Relu::new())?
        .add("conv2", conv(16, 16, 1, s())?)?
        .add("relu2", Relu::new())?
        .add("pool1", MaxPool2d::new(2, 2, 0))?
        .add("conv3", conv(16, 32, 1, s())?)?
        .add("relu3", Relu::new())?
        .add("conv4", conv(32, 32, 2, s())?)?
        .add("relu4", Relu::new())?
        .add("pool2", MaxPool2d::new(2, 2, 0))?
        .add("conv5", conv(32, 64, 1, s())?)?
        .add("relu5", Relu::new())?
        .add("conv6", conv(64, 64, 1, s())?)?
        .add("relu6", Relu::new())?
        .add("pool3", MaxPool2d::new(2, 2, 0))?
        .add(
            "fc1",
            Linear::with_init(64 * 4 * 4, 50, Init::He, s(), device)?,
        )?
        .add("relu7", Relu::new())?
        .add("drop1", Dropout::with_mode(0.5, DropoutMode::Book, s())?)?
        .add("fc2", Linear::with_init(50, 10, Init::He, s(), device)?)?
        .add("drop2", Dropout::with_mode(0.5, DropoutMode::Book, s())?)
}

/// [`deep_convnet`] with batch normalisation after every conv (per channel,
/// [`BatchNorm::channels`]) and after `fc1` (per feature), each before its ReLU as the book's
/// `MultiLayerNetExtend` places it. Same seeds, so the weights start as `deep_convnet`'s.
/// (The book's per-element form over `C·H·W` suits convs badly: a pixel that is blank in
/// every training image gets variance 0 and a scale of 1/√eps, which test images that do
/// reach it turn into garbage.)
pub fn deep_convnet_bn(device: &Device, seed: u64) -> Result<Sequential> {
    let mut seeds = SplitMix64::new(seed);
    let mut s = || seeds.next_u64();
    let conv =
        |cin, cout, pad, seed| Conv2d::with_init(cin, cout, 3, 1, pad, Init::He, seed, device);
    let bn = |channels| BatchNorm::channels(channels, device);
    Sequential::new()
        .add("conv1", conv(1, 16, 1, s())?)?
        .add("bn1", bn(16)?)?
        .add("relu1", Relu::new())?
        .add("conv2", conv(16, 16, 1, s())?)?
        .add("bn2", bn(16)?)?
        .add("relu2", Relu::new())?
        .add("pool1", MaxPool2d::new(2, 2, 0))?
        .add("conv3", conv(16, 32, 1, s())?)?
        .add("bn3", bn(32)?)?
        .add("relu3", Relu::new())?
        .add("conv4", conv(32, 32, 2, s())?)?
        .add("bn4", bn(32)?)?
        .add("relu4", Relu::new())?
        .add("pool2", MaxPool2d::new(2, 2, 0))?
        .add("conv5", conv(32, 64, 1, s())?)?
        .add("bn5", bn(64)?)?
        .add("relu5", Relu::new())?
        .add("conv6", conv(64, 64, 1, s())?)?
        .add("bn6", bn(64)?)?
        .add("relu6", Relu::new())?
        .add("pool3", MaxPool2d::new(2, 2, 0))?
        .add(
            "fc1",
            Linear::with_init(64 * 4 * 4, 50, Init::He, s(), device)?,
        )?
        .add("bn7", BatchNorm::new(50, device)?)?
        .add("relu7", Relu::new())?
        .add("drop1", Dropout::with_mode(0.5, DropoutMode::Book, s())?)?
        .add("fc2", Linear::with_init(50, 10, Init::He, s(), device)?)?
        .add("drop2", Dropout::with_mode(0.5, DropoutMode::Book, s())?)
}

/// The book's ch.7 `SimpleConvNet`: conv 30@5×5 | ReLU | pool 2×2 | Affine 4320→100 | ReLU |
/// Affine 100→10, weights N(0, 0.01²), 433,890 parameters. Input `[N, 1, 28, 28]`.
pub fn simple_convnet(device: &Device, seed: u64) -> Result<Sequential> {
    let mut seeds = SplitMix64::new(seed);
    let init = Init::Std(0.01);
    Sequential::new()
        .add(
            "conv1",
            Conv2d::with_init(1, 30, 5, 1, 0, init, seeds.next_u64(), device)?,
        )?
        .add("relu1", Relu::new())?
        .add("pool1", MaxPool2d::new(2, 2, 0))?
        .add(
            "fc1",
            Linear::with_init(30 * 12 * 12, 100, init, seeds.next_u64(), device)?,
        )?
        .add("relu2", Relu::new())?
        .add(
            "fc2",
            Linear::with_init(100, 10, init, seeds.next_u64(), device)?,
        )
}

/// Hidden-layer activation of an MLP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// ReLU.
    Relu,
    /// Sigmoid.
    Sigmoid,
}

/// Options of the book's `MultiLayerNet(Extend)`.
#[derive(Clone, Debug)]
pub struct MlpConfig {
    /// Layer widths, input first and classes last, e.g. `[784, 100, 100, 10]`.
    pub sizes: Vec<usize>,
    /// Hidden activation.
    pub activation: Activation,
    /// Weight init.
    pub init: Init,
    /// Insert BatchNorm after each hidden affine (the Extend variant).
    pub batch_norm: bool,
    /// Dropout ratio after each hidden activation.
    pub dropout: Option<f32>,
}

impl MlpConfig {
    /// ReLU + He, no BatchNorm, no dropout.
    pub fn new(sizes: &[usize]) -> MlpConfig {
        MlpConfig {
            sizes: sizes.to_vec(),
            activation: Activation::Relu,
            init: Init::He,
            batch_norm: false,
            dropout: None,
        }
    }
}

/// A multi-layer perceptron: Affine → [BatchNorm] → activation → [Dropout] per hidden layer,
/// then a final Affine. Input `[N, sizes[0]]` (or anything that flattens to it).
pub fn mlp(cfg: &MlpConfig, device: &Device, seed: u64) -> Result<Sequential> {
    if cfg.sizes.len() < 2 || cfg.sizes.contains(&0) {
        return Err(Error::invalid(
            "mlp",
            format!(
                "need at least input and output sizes, all positive, got {:?}",
                cfg.sizes
            ),
        ));
    }
    let mut seeds = SplitMix64::new(seed);
    let mut model = Sequential::new();
    let last = cfg.sizes.len() - 2;
    for (i, w) in cfg.sizes.windows(2).enumerate() {
        let k = i + 1;
        model = model.add(
            &format!("fc{k}"),
            Linear::with_init(w[0], w[1], cfg.init, seeds.next_u64(), device)?,
        )?;
        if i == last {
            break;
        }
        if cfg.batch_norm {
            model = model.add(&format!("bn{k}"), BatchNorm::new(w[1], device)?)?;
        }
        model = match cfg.activation {
            Activation::Relu => model.add(&format!("relu{k}"), Relu::new())?,
            Activation::Sigmoid => model.add(&format!("sigmoid{k}"), Sigmoid::new())?,
        };
        if let Some(r) = cfg.dropout {
            model = model.add(
                &format!("drop{k}"),
                Dropout::with_seed(r, seeds.next_u64())?,
            )?;
        }
    }
    Ok(model)
}
