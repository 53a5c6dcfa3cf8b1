//! The CNNs of *Dive into Deep Learning* (d2l, PyTorch version, ch. 7–8), defined as d2l
//! defines them, for 1-channel inputs of a given size (d2l feeds Fashion-MNIST resized to 224
//! or 96 pixels), Xavier-uniform weights (d2l's `init_cnn`), biases 0. The building blocks
//! (residual, inception, dense blocks) are public modules, written as any user would.

use crate::device::Device;
use crate::error::{Error, Result};
use crate::nn::{
    AvgPool2d, BatchNorm, Conv2d, Dropout, GlobalAvgPool2d, Init, Linear, MaxPool2d, Module, Relu,
    Sequential, Sigmoid,
};
use crate::rng::SplitMix64;
use crate::tensor::Tensor;

/// d2l's LeNet (ch. 7.6, PyTorch version) exactly: conv 6@5×5 pad 2 → sigmoid → 2×2 avg-pool →
/// conv 16@5×5 → sigmoid → 2×2 avg-pool → Linear 400→120 → sigmoid → 120→84 → sigmoid →
/// 84→10, Xavier-uniform weights (d2l's `init_cnn`), biases 0. Input `[N, 1, 28, 28]`;
/// 61,706 parameters.
pub fn lenet(device: &Device, seed: u64) -> Result<Sequential> {
    let mut seeds = SplitMix64::new(seed);
    let mut s = || seeds.next_u64();
    let init = Init::XavierUniform;
    Sequential::new()
        .add(
            "conv1",
            Conv2d::with_init(1, 6, 5, 1, 2, init, s(), device)?,
        )?
        .add("sig1", Sigmoid::new())?
        .add("pool1", AvgPool2d::new(2, 2, 0))?
        .add(
            "conv2",
            Conv2d::with_init(6, 16, 5, 1, 0, init, s(), device)?,
        )?
        .add("sig2", Sigmoid::new())?
        .add("pool2", AvgPool2d::new(2, 2, 0))?
        .add(
            "fc1",
            Linear::with_init(16 * 5 * 5, 120, init, s(), device)?,
        )?
        .add("sig3", Sigmoid::new())?
        .add("fc2", Linear::with_init(120, 84, init, s(), device)?)?
        .add("sig4", Sigmoid::new())?
        .add("fc3", Linear::with_init(84, 10, init, s(), device)?)
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
    let conv =
        |cin, cout, k, st, p, seed| Conv2d::with_init(cin, cout, k, st, p, init, seed, device);
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
        .add(
            "fc1",
            Linear::with_init(256 * n * n, 4096, init, s(), device)?,
        )?
        .add("relu6", Relu::new())?
        .add("drop1", Dropout::with_seed(0.5, s())?)?
        .add("fc2", Linear::with_init(4096, 4096, init, s(), device)?)?
        .add("relu7", Relu::new())?
        .add("drop2", Dropout::with_seed(0.5, s())?)?
        .add("fc3", Linear::with_init(4096, 10, init, s(), device)?)
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
            let conv = Conv2d::with_init(cin, cout, 3, 1, 1, init, seeds.next_u64(), device)?;
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
            Linear::with_init(cin * n * n, 4096, init, seeds.next_u64(), device)?,
        )?
        .add("relu1", Relu::new())?
        .add("drop1", Dropout::with_seed(0.5, seeds.next_u64())?)?
        .add(
            "fc2",
            Linear::with_init(4096, 4096, init, seeds.next_u64(), device)?,
        )?
        .add("relu2", Relu::new())?
        .add("drop2", Dropout::with_seed(0.5, seeds.next_u64())?)?
        .add(
            "fc3",
            Linear::with_init(4096, 10, init, seeds.next_u64(), device)?,
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
            model = model.add("drop", Dropout::with_seed(0.5, seeds.next_u64())?)?;
        }
        let mut block = Sequential::new();
        for (i, (ci, k, st, p)) in [(cin, k, st, p), (cout, 1, 1, 0), (cout, 1, 1, 0)]
            .into_iter()
            .enumerate()
        {
            block = block
                .add(
                    &format!("conv{}", i + 1),
                    Conv2d::with_init(ci, cout, k, st, p, init, seeds.next_u64(), device)?,
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

/// d2l's `Residual` (ch. 8.6): relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)), 3×3
/// convs, the shortcut a strided 1×1 conv where the channels or the size change.
#[derive(Module)]
pub struct Residual {
    conv1: Conv2d,
    bn1: BatchNorm,
    conv2: Conv2d,
    bn2: BatchNorm,
    conv3: Option<Conv2d>,
}

impl Residual {
    /// `cin → cout` channels, the first conv (and the shortcut) with `stride`.
    pub fn new(
        cin: usize,
        cout: usize,
        stride: usize,
        seed: u64,
        device: &Device,
    ) -> Result<Residual> {
        let mut s = SplitMix64::new(seed);
        let init = Init::XavierUniform;
        Ok(Residual {
            conv1: Conv2d::with_init(cin, cout, 3, stride, 1, init, s.next_u64(), device)?,
            bn1: BatchNorm::channels(cout, device)?,
            conv2: Conv2d::with_init(cout, cout, 3, 1, 1, init, s.next_u64(), device)?,
            bn2: BatchNorm::channels(cout, device)?,
            conv3: if cin != cout || stride != 1 {
                Some(Conv2d::with_init(
                    cin,
                    cout,
                    1,
                    stride,
                    0,
                    init,
                    s.next_u64(),
                    device,
                )?)
            } else {
                None
            },
        })
    }
}

impl Module for Residual {
    fn forward(&mut self, x: &Tensor) -> Result<Tensor> {
        let y = self.bn1.forward(&self.conv1.forward(x)?)?.relu()?;
        let y = self.bn2.forward(&self.conv2.forward(&y)?)?;
        let shortcut = match &mut self.conv3 {
            Some(c) => c.forward(x)?,
            None => x.clone(),
        };
        y.add(&shortcut)?.relu()
    }

    fn describe(&self) -> String {
        let (d, s) = (self.conv1.weight().value().dims(), self.conv3.is_some());
        format!(
            "Residual({}→{}{})",
            d[1],
            d[0],
            if s { ", 1x1 shortcut" } else { "" }
        )
    }
}

/// The stem of d2l's ResNet, GoogLeNet and DenseNet: 7×7/2 conv to 64 channels (+ batch norm
/// when `bn`), ReLU, 3×3/2 max-pool.
fn stem(device: &Device, seed: u64, bn: bool) -> Result<Sequential> {
    let mut m = Sequential::new().add(
        "conv",
        Conv2d::with_init(1, 64, 7, 2, 3, Init::XavierUniform, seed, device)?,
    )?;
    if bn {
        m = m.add("bn", BatchNorm::channels(64, device)?)?;
    }
    m.add("relu", Relu::new())?
        .add("pool", MaxPool2d::new(3, 2, 1))
}

/// d2l's ResNet-18 (ch. 8.6): the stem, four stages of two [`Residual`]s (64, 128, 256, 512
/// channels; the last three halve the size), global average pooling and Linear 512→10.
/// Any input size ≥ 1 works (d2l: 96; at 28 the last stage sees 1×1).
pub fn resnet18(device: &Device, seed: u64, size: usize) -> Result<Sequential> {
    if size == 0 {
        return Err(Error::invalid("resnet18", "empty input"));
    }
    let mut seeds = SplitMix64::new(seed);
    let mut model = Sequential::new().add("b1", stem(device, seeds.next_u64(), true)?)?;
    let mut cin = 64;
    for (i, cout) in [64, 128, 256, 512].into_iter().enumerate() {
        let stride = if i == 0 { 1 } else { 2 };
        let stage = Sequential::new()
            .add(
                "0",
                Residual::new(cin, cout, stride, seeds.next_u64(), device)?,
            )?
            .add("1", Residual::new(cout, cout, 1, seeds.next_u64(), device)?)?;
        model = model.add(&format!("b{}", i + 2), stage)?;
        cin = cout;
    }
    model.add("gap", GlobalAvgPool2d)?.add(
        "fc",
        Linear::with_init(512, 10, Init::XavierUniform, seeds.next_u64(), device)?,
    )
}

/// d2l's `Inception` block (ch. 8.4): four paths — 1×1; 1×1 then 3×3; 1×1 then 5×5; 3×3
/// max-pool then 1×1 — each with ReLUs, concatenated along the channels. The fields are
/// d2l's names (`p2_1` is path 2's first conv).
#[derive(Module)]
pub struct Inception {
    p1_1: Conv2d,
    p2_1: Conv2d,
    p2_2: Conv2d,
    p3_1: Conv2d,
    p3_2: Conv2d,
    p4_2: Conv2d,
}

impl Inception {
    /// `cin` channels in, `c1 + c2.1 + c3.1 + c4` out.
    pub fn new(
        cin: usize,
        c1: usize,
        c2: (usize, usize),
        c3: (usize, usize),
        c4: usize,
        seed: u64,
        device: &Device,
    ) -> Result<Inception> {
        let mut s = SplitMix64::new(seed);
        let mut conv = |ci, co, k, p| {
            Conv2d::with_init(ci, co, k, 1, p, Init::XavierUniform, s.next_u64(), device)
        };
        // Drawn in this order (the seeds follow the paths), as before the fields were named.
        Ok(Inception {
            p1_1: conv(cin, c1, 1, 0)?,
            p2_1: conv(cin, c2.0, 1, 0)?,
            p2_2: conv(c2.0, c2.1, 3, 1)?,
            p3_1: conv(cin, c3.0, 1, 0)?,
            p3_2: conv(c3.0, c3.1, 5, 2)?,
            p4_2: conv(cin, c4, 1, 0)?,
        })
    }
}

impl Module for Inception {
    fn forward(&mut self, x: &Tensor) -> Result<Tensor> {
        let p1 = self.p1_1.forward(x)?.relu()?;
        let p2 = self.p2_2.forward(&self.p2_1.forward(x)?.relu()?)?.relu()?;
        let p3 = self.p3_2.forward(&self.p3_1.forward(x)?.relu()?)?.relu()?;
        let pooled = x.max_pool2d(3, 3, 1, 1)?.0;
        let p4 = self.p4_2.forward(&pooled)?.relu()?;
        Tensor::cat(&[&p1, &p2, &p3, &p4], 1)
    }

    fn describe(&self) -> String {
        "Inception".into()
    }
}

/// d2l's GoogLeNet (ch. 8.4): the stem without batch norm, 1×1 and 3×3 convs (64, 192), nine
/// [`Inception`] blocks in three groups with 3×3/2 max-pools between, global average pooling
/// and Linear 1024→10. Any input size ≥ 1 (d2l: 96).
pub fn googlenet(device: &Device, seed: u64, size: usize) -> Result<Sequential> {
    if size == 0 {
        return Err(Error::invalid("googlenet", "empty input"));
    }
    let mut seeds = SplitMix64::new(seed);
    let mut s = || seeds.next_u64();
    let init = Init::XavierUniform;
    let b2 = Sequential::new()
        .add(
            "conv1",
            Conv2d::with_init(64, 64, 1, 1, 0, init, s(), device)?,
        )?
        .add("relu1", Relu::new())?
        .add(
            "conv2",
            Conv2d::with_init(64, 192, 3, 1, 1, init, s(), device)?,
        )?
        .add("relu2", Relu::new())?
        .add("pool", MaxPool2d::new(3, 2, 1))?;
    let inc = |cin, c1, c2, c3, c4, seed| Inception::new(cin, c1, c2, c3, c4, seed, device);
    let b3 = Sequential::new()
        .add("0", inc(192, 64, (96, 128), (16, 32), 32, s())?)?
        .add("1", inc(256, 128, (128, 192), (32, 96), 64, s())?)?
        .add("pool", MaxPool2d::new(3, 2, 1))?;
    let b4 = Sequential::new()
        .add("0", inc(480, 192, (96, 208), (16, 48), 64, s())?)?
        .add("1", inc(512, 160, (112, 224), (24, 64), 64, s())?)?
        .add("2", inc(512, 128, (128, 256), (24, 64), 64, s())?)?
        .add("3", inc(512, 112, (144, 288), (32, 64), 64, s())?)?
        .add("4", inc(528, 256, (160, 320), (32, 128), 128, s())?)?
        .add("pool", MaxPool2d::new(3, 2, 1))?;
    let b5 = Sequential::new()
        .add("0", inc(832, 256, (160, 320), (32, 128), 128, s())?)?
        .add("1", inc(832, 384, (192, 384), (48, 128), 128, s())?)?
        .add("gap", GlobalAvgPool2d)?;
    Sequential::new()
        .add("b1", stem(device, s(), false)?)?
        .add("b2", b2)?
        .add("b3", b3)?
        .add("b4", b4)?
        .add("b5", b5)?
        .add("fc", Linear::with_init(1024, 10, init, s(), device)?)
}

/// d2l's `DenseBlock` (ch. 8.7): `convs` conv blocks (batch norm, ReLU, 3×3 conv to
/// `growth` channels), each one's output concatenated to its input along the channels.
/// Its conv blocks are named `0`, `1` … directly under the block (`dense1.0.conv.weight`).
#[derive(Module)]
pub struct DenseBlock {
    #[module(flatten)]
    blocks: Vec<Sequential>,
}

impl DenseBlock {
    /// `cin` channels in, `cin + convs · growth` out.
    pub fn new(
        convs: usize,
        cin: usize,
        growth: usize,
        seed: u64,
        device: &Device,
    ) -> Result<DenseBlock> {
        let mut s = SplitMix64::new(seed);
        let blocks = (0..convs)
            .map(|i| {
                let c = cin + i * growth;
                Sequential::new()
                    .add("bn", BatchNorm::channels(c, device)?)?
                    .add("relu", Relu::new())?
                    .add(
                        "conv",
                        Conv2d::with_init(
                            c,
                            growth,
                            3,
                            1,
                            1,
                            Init::XavierUniform,
                            s.next_u64(),
                            device,
                        )?,
                    )
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(DenseBlock { blocks })
    }
}

impl Module for DenseBlock {
    fn forward(&mut self, x: &Tensor) -> Result<Tensor> {
        let mut x = x.clone();
        for b in &mut self.blocks {
            let y = b.forward(&x)?;
            x = Tensor::cat(&[&x, &y], 1)?;
        }
        Ok(x)
    }

    fn describe(&self) -> String {
        format!("DenseBlock({} convs)", self.blocks.len())
    }
}

/// d2l's DenseNet (ch. 8.7): the stem, four [`DenseBlock`]s of 4 convs (growth 32) with
/// transition blocks (batch norm, ReLU, 1×1 conv halving the channels, 2×2 average pool)
/// between, batch norm, ReLU, global average pooling and Linear →10. Input size ≥ 32 (d2l: 96).
pub fn densenet(device: &Device, seed: u64, size: usize) -> Result<Sequential> {
    if size < 32 {
        return Err(Error::invalid(
            "densenet",
            format!("{size} px: three 2×2 pools after the 4× stem need at least 32"),
        ));
    }
    let mut seeds = SplitMix64::new(seed);
    let mut model = Sequential::new().add("b1", stem(device, seeds.next_u64(), true)?)?;
    let (mut c, growth) = (64, 32);
    for i in 0..4 {
        model = model.add(
            &format!("dense{}", i + 1),
            DenseBlock::new(4, c, growth, seeds.next_u64(), device)?,
        )?;
        c += 4 * growth;
        if i != 3 {
            let t = Sequential::new()
                .add("bn", BatchNorm::channels(c, device)?)?
                .add("relu", Relu::new())?
                .add(
                    "conv",
                    Conv2d::with_init(
                        c,
                        c / 2,
                        1,
                        1,
                        0,
                        Init::XavierUniform,
                        seeds.next_u64(),
                        device,
                    )?,
                )?
                .add("pool", AvgPool2d::new(2, 2, 0))?;
            model = model.add(&format!("trans{}", i + 1), t)?;
            c /= 2;
        }
    }
    model
        .add("bn", BatchNorm::channels(c, device)?)?
        .add("relu", Relu::new())?
        .add("gap", GlobalAvgPool2d)?
        .add(
            "fc",
            Linear::with_init(c, 10, Init::XavierUniform, seeds.next_u64(), device)?,
        )
}
