//! PyTorch's DCGAN example (Radford et al.) sized for 28×28 or 32×32 images: a generator of
//! transposed convolutions with BatchNorm and ReLU and a tanh output, a discriminator of
//! strided convolutions with LeakyReLU 0.2 and BatchNorm (none on its first layer) ending in
//! one logit, and DCGAN's initialisation.
//!
//! | size | generator (from `nz × 1 × 1`) | discriminator |
//! |---|---|---|
//! | 32 | 4×4, 8×8, 16×16, 32×32 (kernel 4; stride 1 then 2) | 16, 8, 4 (stride 2), 1 (4×4 kernel) |
//! | 28 | 7×7 (kernel 7), 14×14, 28×28 (kernel 4, stride 2) | 14, 7 (stride 2), 1 (7×7 kernel) |

use crate::device::Device;
use crate::error::{Error, Result};
use crate::nn::{
    BatchNorm, Conv2d, ConvTranspose2d, LeakyRelu, Module, ModuleExt, Relu, Sequential, Tanh,
};
use crate::tensor::Tensor;

/// The image sizes the two networks are built for.
fn check(what: &str, size: usize, channels: usize, width: usize) -> Result<()> {
    if !matches!(size, 28 | 32) {
        return Err(Error::invalid(
            "dcgan",
            format!("{what}: {size}×{size} images; the nets are built for 28 or 32"),
        ));
    }
    crate::nn::check_sizes("dcgan", &[("channels", channels), (what, width)])?;
    match width.checked_mul(8) {
        Some(_) => Ok(()),
        None => Err(Error::invalid(
            "dcgan",
            format!("{what} {width}: the widths overflow"),
        )),
    }
}

/// DCGAN's generator for `size`×`size` images of `channels` channels from noise
/// `[N, nz, 1, 1]`, with `ngf` feature maps before the last layer (PyTorch's `ngf`; the layers
/// before have 2 and 4 times as many).
pub fn generator(
    size: usize,
    nz: usize,
    ngf: usize,
    channels: usize,
    dev: &Device,
) -> Result<Sequential> {
    check("ngf", size, channels, ngf)?;
    crate::nn::check_sizes("dcgan", &[("nz", nz)])?;
    let up = |cin, cout, k, s, p| -> Result<ConvTranspose2d> {
        Ok(ConvTranspose2d::new(cin, cout, k, s, p, dev)?.without_bias())
    };
    let mut g = Sequential::new();
    // (in, out, kernel, stride, pad) of each layer but the last, which goes to `channels`.
    let layers: Vec<(usize, usize, usize, usize, usize)> = match size {
        32 => vec![
            (nz, ngf * 4, 4, 1, 0),
            (ngf * 4, ngf * 2, 4, 2, 1),
            (ngf * 2, ngf, 4, 2, 1),
        ],
        _ => vec![(nz, ngf * 2, 7, 1, 0), (ngf * 2, ngf, 4, 2, 1)],
    };
    let mut i = 0;
    for &(cin, cout, k, s, p) in &layers {
        g = g
            .add(&i.to_string(), up(cin, cout, k, s, p)?)?
            .add(&(i + 1).to_string(), BatchNorm::channels(cout, dev)?)?
            .add(&(i + 2).to_string(), Relu::new())?;
        i += 3;
    }
    g.add(&i.to_string(), up(ngf, channels, 4, 2, 1)?)?
        .add(&(i + 1).to_string(), Tanh)
}

/// DCGAN's discriminator for `size`×`size` images of `channels` channels (convolutions
/// without biases, as PyTorch's example): one logit per
/// image (`[N, 1, 1, 1]`; PyTorch's example ends in a sigmoid and BCELoss, here the logit goes
/// to [`crate::nn::bce_with_logits`], the same loss without its overflow).
pub fn discriminator(size: usize, ndf: usize, channels: usize, dev: &Device) -> Result<Sequential> {
    check("ndf", size, channels, ndf)?;
    let conv = |cin, cout, k, s, p| -> Result<Conv2d> {
        Ok(Conv2d::new(cin, cout, k, s, p, dev)?.without_bias())
    };
    let lrelu = || LeakyRelu {
        negative_slope: 0.2,
    };
    let mut d = Sequential::new()
        .add("0", conv(channels, ndf, 4, 2, 1)?)?
        .add("1", lrelu())?;
    let (widths, last_k): (&[usize], usize) = match size {
        32 => (&[2, 4], 4),
        _ => (&[2], 7),
    };
    let (mut i, mut cin) = (2, ndf);
    for &m in widths {
        d = d
            .add(&i.to_string(), conv(cin, ndf * m, 4, 2, 1)?)?
            .add(&(i + 1).to_string(), BatchNorm::channels(ndf * m, dev)?)?
            .add(&(i + 2).to_string(), lrelu())?;
        (i, cin) = (i + 3, ndf * m);
    }
    d.add(&i.to_string(), conv(cin, 1, last_k, 1, 0)?)
}

/// DCGAN's `weights_init`: convolution weights (rank 4) from N(0, 0.02), BatchNorm scales
/// (`gamma`, PyTorch's `weight`) from N(1, 0.02), BatchNorm shifts and every bias 0; seeds
/// from the global generator, drawn on the host (the same weights on every device).
pub fn dcgan_init(m: &mut dyn Module) -> Result<()> {
    for (name, p) in m.named_parameters() {
        let v = p.value();
        let (dims, dev) = (v.dims().to_vec(), v.device());
        let seed = crate::rng::next_seed();
        let fresh = match (dims.len(), name.ends_with("gamma")) {
            (4, _) => Tensor::randn(dims, 0.0, 0.02, seed, &dev)?,
            (_, true) => Tensor::randn(dims, 1.0, 0.02, seed, &dev)?,
            _ => Tensor::zeros(dims, crate::DType::F32, &dev)?,
        };
        p.set_value(fresh)?;
    }
    Ok(())
}

/// One iteration's figures, left on the device (read them with [`Tensor::read_scalars`], or
/// add them up over an epoch first): D's loss on real plus fake, G's loss, and D's mean
/// belief `sigmoid(logit)` that real images are real, that G's are before its update and
/// after it (PyTorch's `D(x)`, `D(G(z))` = `d_g_z1 / d_g_z2`).
pub struct StepFigures {
    /// `BCE(D(x), 1) + BCE(D(G(z)), 0)`.
    pub loss_d: Tensor,
    /// `BCE(D(G(z)), 1)` through the updated D.
    pub loss_g: Tensor,
    /// Mean `sigmoid(D(x))`.
    pub d_x: Tensor,
    /// Mean `sigmoid(D(G(z)))` before D's update.
    pub d_g_z1: Tensor,
    /// Mean `sigmoid(D(G(z)))` after D's update.
    pub d_g_z2: Tensor,
}

impl StepFigures {
    /// The five figures as one `[5]` tensor (loss_d, loss_g, d_x, d_g_z1, d_g_z2).
    pub fn stacked(&self) -> Result<Tensor> {
        Tensor::stack(
            &[
                &self.loss_d,
                &self.loss_g,
                &self.d_x,
                &self.d_g_z1,
                &self.d_g_z2,
            ],
            0,
        )
    }
}

/// One iteration of PyTorch's DCGAN example on the batch `real` (`[B, C, H, W]` in [-1, 1]):
/// D's step on `real` and on `G(z)` with fresh noise `z ~ N(0, 1)` `[B, nz, 1, 1]` drawn on
/// the batch's device, then G's step through the updated D on the same `G(z)`. Nothing is
/// read back: on a GPU each optimizer step is one submit, and the noise is one dispatch.
pub fn train_step(
    g: &mut dyn Module,
    d: &mut dyn Module,
    opt_g: &mut crate::optim::Optimizer,
    opt_d: &mut crate::optim::Optimizer,
    real: &Tensor,
    nz: usize,
) -> Result<StepFigures> {
    use crate::nn::bce_with_logits;
    if real.dims().len() != 4 {
        return Err(Error::invalid(
            "dcgan::train_step",
            format!("real images {}: expected [B, C, H, W]", real.shape()),
        ));
    }
    let (b, dev) = (real.dims()[0], real.device());
    let ones = Tensor::ones([b], crate::DType::F32, &dev)?;
    let zeros = Tensor::zeros([b], crate::DType::F32, &dev)?;
    let belief = |logits: &Tensor| logits.detach().sigmoid()?.mean();
    // (1) D: maximise log D(x) + log(1 − D(G(z))).
    d.zero_grad();
    let out_real = d.forward(real)?.reshape([b])?;
    let fake = g.forward(&crate::randn([b, nz, 1, 1], &dev)?)?;
    let out_fake = d.forward(&fake.detach())?.reshape([b])?;
    let loss_d = (bce_with_logits(&out_real, &ones)? + bce_with_logits(&out_fake, &zeros)?)?;
    loss_d.backward()?;
    opt_d.step(d.named_parameters())?;
    // (2) G: maximise log D(G(z)) through the updated D.
    g.zero_grad();
    let out = d.forward(&fake)?.reshape([b])?;
    let loss_g = bce_with_logits(&out, &ones)?;
    loss_g.backward()?;
    opt_g.step(g.named_parameters())?;
    Ok(StepFigures {
        loss_d: loss_d.detach(),
        loss_g: loss_g.detach(),
        d_x: belief(&out_real)?,
        d_g_z1: belief(&out_fake)?,
        d_g_z2: belief(&out)?,
    })
}
