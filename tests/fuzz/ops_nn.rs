//! The neural-network ops' cases: losses, convolution and pooling, normalisation, data
//! (dropout, augmentation, resizing), and layers with their training (an optimizer step).

use crate::MAX_FILLED;
use crate::generator::{Gen, small_product};
use wgnn::Tensor;
use wgnn::distributions::Categorical;
use wgnn::nn::{BatchNorm, Conv2d, Embedding, Linear, Module, ModuleExt};
use wgnn::ops::{
    AugmentSpec, Conv2dGeom, Distribution, DropoutSpec, Kernels, Pool2dGeom, RandomSpec,
};
use wgnn::optim::Optimizer;

/// This family's ops: the middle part of [`crate::ops`].
pub const OPS: &[&str] = &[
    // losses
    "cross_entropy",
    "nll_loss",
    "mse_loss",
    "bce_with_logits",
    "softmax_cross_entropy",
    "softmax_cross_entropy_backward",
    "count_correct",
    "argmax_rows",
    // convolution and pooling
    "conv2d",
    "conv2d_relu",
    "im2col",
    "col2im",
    "conv2d_backward",
    "conv_transpose2d",
    "max_pool2d",
    "max_pool2d_backward",
    "avg_pool2d",
    "global_avg_pool2d",
    // normalisation
    "batch_norm_train",
    "BatchNorm",
    // data
    "dropout",
    "dropout_mask",
    "random",
    "sample_categorical",
    "Categorical",
    "augment",
    "resize_bilinear",
    // layers and their training
    "Linear",
    "Conv2d",
    "Embedding",
    "optimizer_step",
];

/// Draws the operands of `op` and runs it when it is one of [`OPS`]; `None` otherwise.
pub fn run(g: &mut Gen, op: &str) -> Option<wgnn::Result<Vec<Tensor>>> {
    OPS.contains(&op).then(|| draw(g, op))
}

fn draw(g: &mut Gen, op: &str) -> wgnn::Result<Vec<Tensor>> {
    let one = |t: Tensor| -> wgnn::Result<Vec<Tensor>> { Ok(vec![t]) };
    let two = |(a, b): (Tensor, Tensor)| -> wgnn::Result<Vec<Tensor>> { Ok(vec![a, b]) };
    match op {
        "cross_entropy" | "nll_loss" => {
            let d = if g.r.chance(0.7) {
                vec![g.dim(), g.dim()]
            } else {
                g.dims()
            };
            let x = g.float("logits", &d)?;
            let mut ld = d.clone();
            if ld.len() >= 2 {
                ld.remove(1);
            }
            if g.r.chance(0.15) {
                ld = g.related(&ld);
            }
            let classes = d.get(1).copied().unwrap_or(3);
            let labels = g.indices("labels", &ld, classes)?;
            let red = g.reduction();
            g.note(format!(" reduction={red:?}"));
            one(if op == "cross_entropy" {
                wgnn::nn::cross_entropy_with(&x, &labels, red)?
            } else {
                wgnn::nn::loss::nll_loss_with(&x, &labels, red)?
            })
        }
        "mse_loss" | "bce_with_logits" => {
            let d = g.dims();
            let a = g.float("pred", &d)?;
            let e = g.related(&d);
            let b = g.float_like("target", &e, a.dtype())?;
            one(if op == "mse_loss" {
                wgnn::nn::mse_loss(&a, &b)?
            } else {
                wgnn::nn::loss::bce_with_logits(&a, &b)?
            })
        }
        "softmax_cross_entropy"
        | "softmax_cross_entropy_backward"
        | "count_correct"
        | "argmax_rows" => {
            let d = if g.r.chance(0.8) {
                vec![g.dim(), g.dim()]
            } else {
                g.dims()
            };
            let x = g.float("logits", &d)?;
            let rows = if d.is_empty() {
                1
            } else {
                d[..d.len() - 1].iter().product::<usize>()
            };
            let ld = if g.r.chance(0.85) {
                vec![rows]
            } else {
                g.dims()
            };
            let labels = g.indices("labels", &ld, d.last().copied().unwrap_or(3))?;
            match op {
                "softmax_cross_entropy" => two(x.softmax_cross_entropy(&labels)?),
                "softmax_cross_entropy_backward" => {
                    let dout = g.value();
                    g.note(format!(" dout={dout}"));
                    one(x.softmax_cross_entropy_backward(&labels, dout)?)
                }
                "count_correct" => one(x.count_correct(&labels)?),
                _ => one(x.argmax_rows()?),
            }
        }
        "conv2d" | "conv2d_relu" | "conv2d_backward" => {
            let x = g.images("x")?;
            let xd = x.dims().to_vec();
            let c = xd.get(1).copied().unwrap_or(1);
            let f = 1 + g.r.below(3);
            let k = 1 + g.r.below(3);
            let wd = if g.r.chance(0.85) {
                vec![f, c, k, k]
            } else {
                g.dims()
            };
            let w = g.float_like("w", &wd, x.dtype())?;
            let (stride, pad) = (g.arg(), g.arg());
            g.note(format!(" stride={stride} pad={pad}"));
            match op {
                "conv2d_backward" => {
                    // dout shaped as the output would be, when that is defined and small.
                    let out = |h: usize| {
                        h.checked_add(pad.checked_mul(2)?)?
                            .checked_sub(k)?
                            .checked_div(stride)?
                            .checked_add(1)
                    };
                    let od = match xd.as_slice() {
                        &[n, _, h, w] if g.r.chance(0.85) => match (out(h), out(w)) {
                            (Some(oh), Some(ow))
                                if small_product(&[n, f, oh, ow], usize::MAX) <= MAX_FILLED =>
                            {
                                vec![n, f, oh, ow]
                            }
                            _ => g.dims(),
                        },
                        _ => g.dims(),
                    };
                    let dout = g.float_like("dout", &od, x.dtype())?;
                    let (dx, dw, db) = x.conv2d_backward(&w, &dout, stride, pad)?;
                    Ok(vec![dx, dw, db])
                }
                _ => {
                    let bd = if g.r.chance(0.9) { vec![f] } else { g.dims() };
                    let b = g.float_like("b", &bd, x.dtype())?;
                    one(if op == "conv2d" {
                        x.conv2d(&w, &b, stride, pad)?
                    } else {
                        x.conv2d_relu(&w, &b, stride, pad)?
                    })
                }
            }
        }
        "conv_transpose2d" => {
            let x = g.images("x")?;
            let c = x.dims().get(1).copied().unwrap_or(1);
            let (f, k) = (1 + g.r.below(3), 1 + g.r.below(4));
            let wd = if g.r.chance(0.85) {
                vec![c, f, k, k]
            } else {
                g.dims()
            };
            let w = g.float_like("w", &wd, x.dtype())?;
            let b = match g.r.chance(0.5) {
                true => {
                    let bd = if g.r.chance(0.9) { vec![f] } else { g.dims() };
                    Some(g.float_like("b", &bd, x.dtype())?)
                }
                false => None,
            };
            let (stride, pad, output_padding) = (g.arg(), g.arg(), g.arg());
            g.note(format!(
                " stride={stride} pad={pad} output_padding={output_padding}"
            ));
            let y = x.requiring_grad()?.conv_transpose2d(
                &w,
                b.as_ref(),
                stride,
                pad,
                output_padding,
            )?;
            y.sum()?.backward()?;
            one(y)
        }
        "im2col" => {
            let x = g.images("x")?;
            let (kh, kw, stride, pad) = (g.arg(), g.arg(), g.arg(), g.arg());
            g.note(format!(" k={kh}x{kw} stride={stride} pad={pad}"));
            one(x.im2col(kh, kw, stride, pad)?)
        }
        "col2im" => {
            let geom = Conv2dGeom {
                n: g.arg(),
                c: g.arg(),
                h: g.arg(),
                w: g.arg(),
                kh: g.arg(),
                kw: g.arg(),
                stride: g.arg(),
                pad: g.arg(),
            };
            g.note(format!(" {geom:?}"));
            // Columns of the right shape when it is small and well defined, else any.
            let out = |h: usize, k: usize| {
                h.checked_add(geom.pad.checked_mul(2)?)?
                    .checked_sub(k)?
                    .checked_div(geom.stride)?
                    .checked_add(1)
            };
            let cd = match (out(geom.h, geom.kh), out(geom.w, geom.kw)) {
                (Some(oh), Some(ow)) => {
                    let rows = small_product(&[geom.n, oh, ow], usize::MAX);
                    let cols = small_product(&[geom.c, geom.kh, geom.kw], usize::MAX);
                    if rows.saturating_mul(cols) <= MAX_FILLED && g.r.chance(0.8) {
                        vec![rows, cols]
                    } else {
                        g.dims()
                    }
                }
                _ => g.dims(),
            };
            let col = g.float("col", &cd)?;
            one(col.col2im(&geom)?)
        }
        "max_pool2d" | "avg_pool2d" => {
            let x = g.images("x")?;
            let (ph, pw, stride, pad) = (g.arg(), g.arg(), g.arg(), g.arg());
            g.note(format!(" window={ph}x{pw} stride={stride} pad={pad}"));
            if op == "max_pool2d" {
                two(x.max_pool2d(ph, pw, stride, pad)?)
            } else {
                one(x.avg_pool2d(ph, stride, pad)?)
            }
        }
        "max_pool2d_backward" => {
            let x = g.images("x")?;
            let (ph, stride, pad) = (1 + g.r.below(3), 1 + g.r.below(2), g.r.below(2));
            g.note(format!(" window={ph} stride={stride} pad={pad}"));
            let (y, idx) = x.detach().max_pool2d(ph, ph, stride, pad)?;
            let dy = g.float_like("dy", y.dims(), x.dtype())?;
            let xd = x.dims();
            let geom = if g.r.chance(0.8) {
                x.pool_geom(ph, ph, stride, pad)?
            } else {
                Pool2dGeom {
                    n: xd[0],
                    c: g.arg(),
                    h: g.arg(),
                    w: g.arg(),
                    ph: g.arg(),
                    pw: g.arg(),
                    stride: g.arg(),
                    pad: g.arg(),
                }
            };
            g.note(format!(" {geom:?}"));
            one(dy.max_pool2d_backward(&idx, &geom)?)
        }
        "global_avg_pool2d" => {
            let x = g.images("x")?;
            one(x.global_avg_pool2d()?)
        }
        "batch_norm_train" => {
            let d = if g.r.chance(0.85) {
                vec![g.dim(), g.dim(), g.dim()]
            } else {
                g.dims()
            };
            let x = g.float("x", &d)?;
            let c = d.get(1).copied().unwrap_or(1);
            let cd = if g.r.chance(0.9) { vec![c] } else { g.dims() };
            let gamma = g.float_like("gamma", &cd, x.dtype())?;
            let beta = g.float_like("beta", &cd, x.dtype())?;
            let eps = if g.r.chance(0.8) { 1e-5 } else { g.value() };
            g.note(format!(" eps={eps}"));
            let (y, mean, var) = x.batch_norm_train(&gamma, &beta, eps)?;
            Ok(vec![y, mean, var])
        }
        "BatchNorm" => {
            let x = if g.r.chance(0.5) {
                g.images("x")?
            } else {
                let d = g.dims();
                g.float("x", &d)?
            };
            let per_channel = g.r.chance(0.5);
            let size = if g.r.chance(0.8) {
                let d = x.dims();
                if per_channel {
                    d.get(1).copied().unwrap_or(1)
                } else {
                    d.get(1..).map_or(1, |r| r.iter().product())
                }
            } else {
                g.arg()
            };
            let train = g.r.chance(0.7);
            g.note(format!(
                " {}({size}) train={train}",
                if per_channel { "channels" } else { "new" }
            ));
            let mut bn = if per_channel {
                BatchNorm::channels(size, g.dev)?
            } else {
                BatchNorm::new(size, g.dev)?
            };
            bn.set_train(train);
            let y = bn.forward(&x)?;
            // Parameters require a gradient: the backward reaches them.
            one(y)
        }
        "dropout" | "dropout_mask" => {
            let d = g.dims();
            let spec = DropoutSpec {
                ratio: if g.r.chance(0.8) {
                    g.r.unit()
                } else {
                    g.value()
                },
                scale: g.value(),
                seed: g.r.next() as u32,
                offset: g.r.next() as u32,
            };
            g.note(format!(" {spec:?}"));
            if op == "dropout" {
                let x = g.float("x", &d)?;
                one(x.dropout(&spec)?)
            } else {
                g.note(format!(" shape={d:?}"));
                one(Tensor::dropout_mask(d, &spec, g.dev)?)
            }
        }
        "random" => {
            let d = g.dims();
            let (a, b) = (g.value(), g.value());
            let dist = if g.r.chance(0.5) {
                Distribution::Uniform { low: a, high: b }
            } else {
                Distribution::Normal { mean: a, std: b }
            };
            let spec = RandomSpec {
                dist,
                seed: g.r.next() as u32,
                offset: g.r.next() as u32,
            };
            g.note(format!(" {spec:?} shape={d:?}"));
            one(Tensor::random(d, &spec, g.dev)?)
        }
        "sample_categorical" => {
            let d = g.dims();
            let x = g.float("logits", &d)?;
            one(x.sample_categorical(g.r.next() as u32, g.r.next() as u32)?)
        }
        "Categorical" => {
            let d = g.dims();
            let x = g.float("scores", &d)?;
            let pi = if g.r.chance(0.5) {
                Categorical::new(&x)?
            } else {
                Categorical::from_probs(&x)?
            };
            let a = pi.sample()?;
            let lp = pi.log_prob(&a)?;
            Ok(vec![a, lp, pi.entropy()?])
        }
        "augment" => {
            let x = g.images("x")?.detach();
            let bound = |g: &mut Gen, hi: f32| {
                if g.r.chance(0.85) {
                    g.r.unit() * hi
                } else {
                    g.value()
                }
            };
            let spec = AugmentSpec {
                rotate: bound(g, 30.0),
                scale: bound(g, 0.5),
                shift: bound(g, 3.0),
                flip: g.r.chance(0.5),
                brightness: bound(g, 0.5),
                contrast: bound(g, 0.5),
                elastic_alpha: if g.r.chance(0.5) { 0.0 } else { bound(g, 40.0) },
                elastic_sigma: bound(g, 8.0),
                seed: g.r.next() as u32,
                offset: g.r.next() as u32,
            };
            g.note(format!(" {spec:?}"));
            one(x.augment(&spec)?)
        }
        "resize_bilinear" => {
            let x = g.images("x")?.detach();
            let (oh, ow) = (g.arg(), g.arg());
            g.note(format!(" to {oh}x{ow}"));
            one(x.resize_bilinear(oh, ow)?)
        }
        "Linear" => {
            let (i, o) = (g.arg(), g.arg());
            g.note(format!(" Linear({i}, {o})"));
            let mut layer = Linear::new(i, o, g.dev)?;
            let xd = if g.r.chance(0.8) {
                vec![g.dim(), i]
            } else {
                g.dims()
            };
            let x = g.float("x", &xd)?;
            one(layer.forward(&x)?)
        }
        "Conv2d" => {
            let (i, o, k, s, p) = (g.arg(), g.arg(), g.arg(), g.arg(), g.arg());
            g.note(format!(" Conv2d({i}, {o}, k={k}, stride={s}, pad={p})"));
            let mut layer = Conv2d::new(i, o, k, s, p, g.dev)?;
            let x = g.images("x")?;
            one(layer.forward(&x)?)
        }
        "Embedding" => {
            let (rows, dim) = (g.arg(), g.arg());
            g.note(format!(" Embedding({rows}, {dim})"));
            let mut layer = Embedding::new(rows, dim, g.dev)?;
            let id = g.dims();
            let idx = g.indices("idx", &id, rows)?;
            one(layer.forward(&idx)?)
        }
        "optimizer_step" => {
            let (i, o) = (1 + g.r.below(4), 1 + g.r.below(4));
            let mut layer = Linear::new(i, o, g.dev)?;
            let xd = if g.r.chance(0.9) {
                vec![g.dim(), i]
            } else {
                g.dims()
            };
            let x = g.float("x", &xd)?;
            let name =
                g.r.pick(&["sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam"]);
            let lr = if g.r.chance(0.7) { 0.01 } else { g.value() };
            let clip = g.r.chance(0.3).then(|| g.value());
            g.note(format!(
                " Linear({i}, {o}) {name} lr={lr} clip={clip:?} | forward sum backward step"
            ));
            let mut opt = Optimizer::by_name(name, Some(lr))?;
            layer.forward(&x)?.sum()?.backward()?;
            if let Some(max_norm) = clip {
                wgnn::optim::clip_grad_norm(layer.named_parameters(), max_norm)?;
            }
            opt.step(layer.named_parameters())?;
            Ok(layer
                .named_parameters()
                .into_iter()
                .map(|(_, p)| p.value().clone())
                .collect())
        }
        other => unreachable!("no case for op {other}"),
    }
}
