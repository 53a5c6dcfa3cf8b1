//! The book's networks, and d2l's, built as [`Sequential`]s.

use crate::device::Device;
use crate::error::{Error, Result};
use crate::nn::{
    AvgPool2d, BatchNorm, Conv2d, Dropout, DropoutMode, GlobalAvgPool2d, Init, Linear, MaxPool2d,
    Relu, Sequential, Sigmoid,
};
use crate::rng::SplitMix64;

/// The book's ch.8 `DeepConvNet` (the "VGG-like" net, 99.38 % on MNIST):
/// conv 16, 16 | pool | 32, 32 (the 4th with pad 2) | pool | 64, 64 | pool | Affine 1024→50,
/// ReLU, Dropout 0.5, Affine 50→10, Dropout 0.5 — 3×3 convs, He init, 123,552 parameters.
/// Input `[N, 1, 28, 28]`. The dropouts are the book's own form ([`DropoutMode::Book`]:
/// unscaled mask in training, × 0.5 in evaluation) so that training follows the book's run.
pub fn deep_convnet(device: &Device, seed: u64) -> Result<Sequential> {
    let mut seeds = SplitMix64::new(seed);
    let mut s = || seeds.next_u64();
    let conv = |cin, cout, pad, seed| Conv2d::new(cin, cout, 3, 1, pad, Init::He, seed, device);
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
        .add("fc1", Linear::new(64 * 4 * 4, 50, Init::He, s(), device)?)?
        .add("relu7", Relu::new())?
        .add("drop1", Dropout::with_mode(0.5, DropoutMode::Book, s())?)?
        .add("fc2", Linear::new(50, 10, Init::He, s(), device)?)?
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
    let conv = |cin, cout, pad, seed| Conv2d::new(cin, cout, 3, 1, pad, Init::He, seed, device);
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
        .add("fc1", Linear::new(64 * 4 * 4, 50, Init::He, s(), device)?)?
        .add("bn7", BatchNorm::new(50, device)?)?
        .add("relu7", Relu::new())?
        .add("drop1", Dropout::with_mode(0.5, DropoutMode::Book, s())?)?
        .add("fc2", Linear::new(50, 10, Init::He, s(), device)?)?
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
            Conv2d::new(1, 30, 5, 1, 0, init, seeds.next_u64(), device)?,
        )?
        .add("relu1", Relu::new())?
        .add("pool1", MaxPool2d::new(2, 2, 0))?
        .add(
            "fc1",
            Linear::new(30 * 12 * 12, 100, init, seeds.next_u64(), device)?,
        )?
        .add("relu2", Relu::new())?
        .add("fc2", Linear::new(100, 10, init, seeds.next_u64(), device)?)
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
            Linear::new(w[0], w[1], cfg.init, seeds.next_u64(), device)?,
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
            model = model.add(&format!("drop{k}"), Dropout::new(r, seeds.next_u64())?)?;
        }
    }
    Ok(model)
}

/// d2l's LeNet (ch. 7.6, PyTorch version) exactly: conv 6@5×5 pad 2 → sigmoid → 2×2 avg-pool →
/// conv 16@5×5 → sigmoid → 2×2 avg-pool → Linear 400→120 → sigmoid → 120→84 → sigmoid →
/// 84→10, Xavier-uniform weights (d2l's `init_cnn`), biases 0. Input `[N, 1, 28, 28]`;
/// 61,706 parameters.
pub fn lenet(device: &Device, seed: u64) -> Result<Sequential> {
    let mut seeds = SplitMix64::new(seed);
    let mut s = || seeds.next_u64();
    let init = Init::XavierUniform;
    Sequential::new()
        .add("conv1", Conv2d::new(1, 6, 5, 1, 2, init, s(), device)?)?
        .add("sig1", Sigmoid::new())?
        .add("pool1", AvgPool2d::new(2, 2, 0))?
        .add("conv2", Conv2d::new(6, 16, 5, 1, 0, init, s(), device)?)?
        .add("sig2", Sigmoid::new())?
        .add("pool2", AvgPool2d::new(2, 2, 0))?
        .add("fc1", Linear::new(16 * 5 * 5, 120, init, s(), device)?)?
        .add("sig3", Sigmoid::new())?
        .add("fc2", Linear::new(120, 84, init, s(), device)?)?
        .add("sig4", Sigmoid::new())?
        .add("fc3", Linear::new(84, 10, init, s(), device)?)
}

/// Output size of a window of `k` moved by `s` with padding `p` over `n` (floor, as
/// PyTorch); an error naming `what` when nothing is left.
fn out_size(what: &'static str, n: usize, k: usize, s: usize, p: usize) -> Result<usize> {
    (n + 2 * p)
        .checked_sub(k)
        .map(|v| v / s + 1)
        .ok_or_else(|| {
            Error::invalid(
                what,
                format!(
                    "a {k}×{k} window does not fit {n} pixels (pad {p}): use a larger --resize"
                ),
            )
        })
}

/// d2l's AlexNet (ch. 8.1) for 1-channel `size`×`size` inputs (d2l: 224; the smallest that
/// fits is 65): convs 96@11×11/4, 256@5×5, 384, 384, 256@3×3 with three 3×3/2 max-pools, then
/// Linear 4096, 4096 (dropout 0.5 each) and 10. Xavier-uniform weights.
pub fn alexnet(device: &Device, seed: u64, size: usize) -> Result<Sequential> {
    const WHAT: &str = "alexnet";
    let mut seeds = SplitMix64::new(seed);
    let mut s = || seeds.next_u64();
    let init = Init::XavierUniform;
    let mut n = out_size(WHAT, size, 11, 4, 1)?;
    n = out_size(WHAT, n, 3, 2, 0)?;
    n = out_size(WHAT, n, 3, 2, 0)?;
    n = out_size(WHAT, n, 3, 2, 0)?;
    let conv = |cin, cout, k, st, p, seed| Conv2d::new(cin, cout, k, st, p, init, seed, device);
    Sequential::new()
        .add("conv1", conv(1, 96, 11, 4, 1, s())?)?
        .add("relu1", Relu::new())?
        .add("pool1", MaxPool2d::new(3, 2, 0))?
        .add("conv2", conv(96, 256, 5, 1, 2, s())?)?
        .add("relu2", Relu::new())?
        .add("pool2", MaxPool2d::new(3, 2, 0))?
        .add("conv3", conv(256, 384, 3, 1, 1, s())?)?
        .add("relu3", Relu::new())?
        .add("conv4", conv(384, 384, 3, 1, 1, s())?)?
        .add("relu4", Relu::new())?
        .add("conv5", conv(384, 256, 3, 1, 1, s())?)?
        .add("relu5", Relu::new())?
        .add("pool3", MaxPool2d::new(3, 2, 0))?
        .add("fc1", Linear::new(256 * n * n, 4096, init, s(), device)?)?
        .add("relu6", Relu::new())?
        .add("drop1", Dropout::new(0.5, s())?)?
        .add("fc2", Linear::new(4096, 4096, init, s(), device)?)?
        .add("relu7", Relu::new())?
        .add("drop2", Dropout::new(0.5, s())?)?
        .add("fc3", Linear::new(4096, 10, init, s(), device)?)
}

/// d2l's VGG-11 (ch. 8.2) with its channel divisor `ratio` (d2l trains `ratio = 4`): blocks of
/// 1, 1, 2, 2, 2 3×3 convs (64, 128, 256, 512, 512 channels / ratio), each block ending in a 2×2
/// max-pool, then Linear 4096, 4096 (dropout 0.5 each) and 10. 1-channel `size`×`size` inputs
/// (d2l: 224; at least 32).
pub fn vgg11(device: &Device, seed: u64, size: usize, ratio: usize) -> Result<Sequential> {
    const WHAT: &str = "vgg11";
    if ratio == 0 || 64 % ratio != 0 {
        return Err(Error::invalid(
            WHAT,
            format!("ratio {ratio} must divide 64"),
        ));
    }
    let mut seeds = SplitMix64::new(seed);
    let init = Init::XavierUniform;
    let mut model = Sequential::new();
    let (mut cin, mut n) = (1, size);
    for (b, (convs, width)) in [(1, 64), (1, 128), (2, 256), (2, 512), (2, 512)]
        .into_iter()
        .enumerate()
    {
        let cout = width / ratio;
        for i in 0..convs {
            let name = format!("b{}c{}", b + 1, i + 1);
            let conv = Conv2d::new(cin, cout, 3, 1, 1, init, seeds.next_u64(), device)?;
            model = model
                .add(&name, conv)?
                .add(&format!("{name}relu"), Relu::new())?;
            cin = cout;
        }
        n = out_size(WHAT, n, 2, 2, 0)?;
        model = model.add(&format!("b{}pool", b + 1), MaxPool2d::new(2, 2, 0))?;
    }
    model
        .add(
            "fc1",
            Linear::new(cin * n * n, 4096, init, seeds.next_u64(), device)?,
        )?
        .add("relu1", Relu::new())?
        .add("drop1", Dropout::new(0.5, seeds.next_u64())?)?
        .add(
            "fc2",
            Linear::new(4096, 4096, init, seeds.next_u64(), device)?,
        )?
        .add("relu2", Relu::new())?
        .add("drop2", Dropout::new(0.5, seeds.next_u64())?)?
        .add(
            "fc3",
            Linear::new(4096, 10, init, seeds.next_u64(), device)?,
        )
}

/// d2l's NiN (ch. 8.3): blocks of a conv and two 1×1 convs (96@11×11/4, 256@5×5, 384@3×3,
/// 10@3×3) with ReLUs, 3×3/2 max-pools between them, dropout 0.5 before the last block, and
/// global average pooling as the classifier. 1-channel `size`×`size` inputs (d2l: 224; at
/// least 67).
pub fn nin(device: &Device, seed: u64, size: usize) -> Result<Sequential> {
    const WHAT: &str = "nin";
    let mut seeds = SplitMix64::new(seed);
    let init = Init::XavierUniform;
    // The size check: what is left after the strided conv and the three pools (the head is
    // a global average, so any size ≥ 1 works).
    let mut n = out_size(WHAT, size, 11, 4, 0)?;
    for _ in 0..3 {
        n = out_size(WHAT, n, 3, 2, 0)?;
    }
    debug_assert!(n >= 1);
    let mut model = Sequential::new();
    let mut cin = 1;
    for (b, (cout, k, st, p)) in [
        (96, 11, 4, 0),
        (256, 5, 1, 2),
        (384, 3, 1, 1),
        (10, 3, 1, 1),
    ]
    .into_iter()
    .enumerate()
    {
        if b == 3 {
            model = model.add("drop", Dropout::new(0.5, seeds.next_u64())?)?;
        }
        let mut block = Sequential::new();
        for (i, (ci, k, st, p)) in [(cin, k, st, p), (cout, 1, 1, 0), (cout, 1, 1, 0)]
            .into_iter()
            .enumerate()
        {
            block = block
                .add(
                    &format!("conv{}", i + 1),
                    Conv2d::new(ci, cout, k, st, p, init, seeds.next_u64(), device)?,
                )?
                .add(&format!("relu{}", i + 1), Relu::new())?;
        }
        model = model.add(&format!("block{}", b + 1), block)?;
        if b < 3 {
            model = model.add(&format!("pool{}", b + 1), MaxPool2d::new(3, 2, 0))?;
        }
        cin = cout;
    }
    model.add("gap", GlobalAvgPool2d)
}
