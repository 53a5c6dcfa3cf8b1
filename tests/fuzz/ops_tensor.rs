//! The tensor ops' cases: pointwise (unary, binary, ternary, broadcasting), reductions,
//! products, shape, indexing, and making, converting and reading tensors.

use crate::generator::{Gen, small_product};
use wgnn::ops::Kernels;
use wgnn::{DType, Device, Tensor};

/// This family's ops from pointwise to indexing: the first part of [`crate::ops`].
pub const OPS: &[&str] = &[
    // pointwise, unary
    "neg",
    "abs",
    "sqrt",
    "rsqrt",
    "recip",
    "exp",
    "log",
    "sin",
    "cos",
    "tanh",
    "sigmoid",
    "relu",
    "gelu",
    "silu",
    "softplus",
    "leaky_relu",
    "elu",
    "add_scalar",
    "mul_scalar",
    "powf",
    "sqrt_eps",
    "clamp",
    "clamp_min",
    "clamp_max",
    "expand",
    // pointwise, binary and ternary (broadcasting)
    "add",
    "sub",
    "mul",
    "div",
    "pow",
    "maximum",
    "minimum",
    "eq",
    "ne",
    "lt",
    "le",
    "gt",
    "ge",
    "masked_fill",
    "where",
    "operators",
    // reductions
    "sum",
    "sum_dim",
    "mean",
    "mean_dim",
    "var",
    "var_dim",
    "amax",
    "amin",
    "max",
    "min",
    "max_dim",
    "min_dim",
    "argmax",
    "argmin",
    "logsumexp",
    "softmax",
    "log_softmax",
    "sum_to",
    "layer_norm",
    // products
    "matmul",
    "matmul_t",
    "linear",
    "gemm_",
    // shape
    "reshape",
    "flatten",
    "squeeze",
    "squeeze_all",
    "unsqueeze",
    "permute",
    "transpose",
    "t",
    "movedim",
    "split",
    "chunk",
    "stack",
    "narrow",
    "cat",
    "transpose_last2",
    // indexing
    "index_select",
    "gather",
    "embedding",
    "one_hot",
    "gather_bytes",
];

/// Making, converting and reading tensors: the last part of [`crate::ops`].
pub const MAKE: &[&str] = &[
    // making, converting, reading
    "zeros",
    "full",
    "arange",
    "randn",
    "from_slice",
    "to_dtype",
    "to_device",
    "try_clone",
    "item",
    "fill_",
    "axpy_",
    "backward_with",
    "read_scalars",
];

/// Draws the operands of `op` and runs it when it is one of this family's ([`OPS`], [`MAKE`]);
/// `None` otherwise.
pub fn run(g: &mut Gen, op: &str) -> Option<wgnn::Result<Vec<Tensor>>> {
    (OPS.contains(&op) || MAKE.contains(&op)).then(|| draw(g, op))
}

fn draw(g: &mut Gen, op: &str) -> wgnn::Result<Vec<Tensor>> {
    let one = |t: Tensor| -> wgnn::Result<Vec<Tensor>> { Ok(vec![t]) };
    let two = |(a, b): (Tensor, Tensor)| -> wgnn::Result<Vec<Tensor>> { Ok(vec![a, b]) };
    match op {
        "neg" | "abs" | "sqrt" | "rsqrt" | "recip" | "exp" | "log" | "sin" | "cos" | "tanh"
        | "sigmoid" | "relu" | "gelu" | "silu" | "softplus" => {
            let d = g.dims();
            let x = g.float("x", &d)?;
            one(match op {
                "neg" => x.neg(),
                "abs" => x.abs(),
                "sqrt" => x.sqrt(),
                "rsqrt" => x.rsqrt(),
                "recip" => x.recip(),
                "exp" => x.exp(),
                "log" => x.log(),
                "sin" => x.sin(),
                "cos" => x.cos(),
                "tanh" => x.tanh(),
                "sigmoid" => x.sigmoid(),
                "relu" => x.relu(),
                "gelu" => x.gelu(),
                "silu" => x.silu(),
                _ => x.softplus(),
            }?)
        }
        "leaky_relu" | "elu" | "add_scalar" | "mul_scalar" | "powf" | "sqrt_eps" | "clamp"
        | "clamp_min" | "clamp_max" => {
            let d = g.dims();
            let x = g.float("x", &d)?;
            let (a, b) = (g.value(), g.value());
            g.note(format!(" a={a} b={b}"));
            one(match op {
                "leaky_relu" => x.leaky_relu(a),
                "elu" => x.elu(a),
                "add_scalar" => x.add_scalar(a),
                "mul_scalar" => x.mul_scalar(a),
                "powf" => x.powf(a),
                "sqrt_eps" => x.sqrt_eps(a),
                "clamp" => x.clamp(a, b),
                "clamp_min" => x.clamp_min(a),
                _ => x.clamp_max(a),
            }?)
        }
        "expand" => {
            let d = g.dims();
            let x = g.float("x", &d)?;
            let mut to = g.related(&d);
            if g.r.chance(0.5) {
                to.insert(0, g.dim());
            }
            g.note(format!(" to={to:?}"));
            one(x.expand(to)?)
        }
        "add" | "sub" | "mul" | "div" | "pow" | "maximum" | "minimum" | "eq" | "ne" | "lt"
        | "le" | "gt" | "ge" | "masked_fill" => {
            let d = g.dims();
            let a = g.float("a", &d)?;
            let e = g.related(&d);
            let b = g.float_like("b", &e, a.dtype())?;
            one(match op {
                "add" => a.add(&b),
                "sub" => a.sub(&b),
                "mul" => a.mul(&b),
                "div" => a.div(&b),
                "pow" => a.pow(&b),
                "maximum" => a.maximum(&b),
                "minimum" => a.minimum(&b),
                "eq" => a.eq(&b),
                "ne" => a.ne(&b),
                "lt" => a.lt(&b),
                "le" => a.le(&b),
                "gt" => a.gt(&b),
                "ge" => a.ge(&b),
                _ => {
                    let v = g.value();
                    g.note(format!(" value={v}"));
                    a.masked_fill(&b, v)
                }
            }?)
        }
        "where" => {
            let d = g.dims();
            let m = g.float("mask", &d)?;
            let (e, f) = (g.related(&d), g.related(&d));
            let a = g.float_like("a", &e, m.dtype())?;
            let b = g.float_like("b", &f, m.dtype())?;
            one(Tensor::where_(&m, &a, &b)?)
        }
        "operators" => {
            let d = g.dims();
            let a = g.float("a", &d)?;
            let e = g.related(&d);
            let b = g.float_like("b", &e, a.dtype())?;
            let s = g.value();
            g.note(format!(" s={s} | ((a + b) * s - b) / a"));
            one((&(&(&(&a + &b)? * s)? - &b)? / &a)?)
        }
        "sum" | "mean" | "var" | "max" | "min" => {
            let d = g.dims();
            let x = g.float("x", &d)?;
            one(match op {
                "sum" => x.sum(),
                "mean" => x.mean(),
                "var" => x.var(),
                "max" => x.max(),
                _ => x.min(),
            }?)
        }
        "sum_dim" | "mean_dim" | "var_dim" | "amax" | "amin" | "logsumexp" => {
            let d = g.dims();
            let x = g.float("x", &d)?;
            let dims = g.sdims(d.len());
            let keep = g.r.chance(0.5);
            g.note(format!(" dims={dims:?} keepdim={keep}"));
            one(match op {
                "sum_dim" => x.sum_dim(&dims, keep),
                "mean_dim" => x.mean_dim(&dims, keep),
                "var_dim" => {
                    let c = g.arg();
                    g.note(format!(" correction={c}"));
                    x.var_dim(&dims, c, keep)
                }
                "amax" => x.amax(&dims, keep),
                "amin" => x.amin(&dims, keep),
                _ => x.logsumexp(&dims, keep),
            }?)
        }
        "max_dim" | "min_dim" | "argmax" | "argmin" | "softmax" | "log_softmax" => {
            let d = g.dims();
            let x = g.float("x", &d)?;
            let dim = g.sdim(d.len());
            let keep = g.r.chance(0.5);
            g.note(format!(" dim={dim} keepdim={keep}"));
            match op {
                "max_dim" => two(x.max_dim(dim, keep)?),
                "min_dim" => two(x.min_dim(dim, keep)?),
                "argmax" => one(x.argmax(dim, keep)?),
                "argmin" => one(x.argmin(dim, keep)?),
                "softmax" => one(x.softmax(dim)?),
                _ => one(x.log_softmax(dim)?),
            }
        }
        "sum_to" => {
            let d = g.dims();
            let x = g.float("x", &d)?;
            let to = g.related(&d);
            g.note(format!(" to={to:?}"));
            one(x.sum_to(&to)?)
        }
        "layer_norm" => {
            let d = g.dims();
            let x = g.float("x", &d)?;
            let k = if g.r.chance(0.9) {
                g.r.below(d.len() + 2)
            } else {
                g.arg()
            };
            let tail = d[d.len().saturating_sub(k)..].to_vec();
            let w = if g.r.chance(0.5) {
                let e = g.related(&tail);
                Some(g.float_like("weight", &e, x.dtype())?)
            } else {
                None
            };
            let b = if g.r.chance(0.5) {
                let e = g.related(&tail);
                Some(g.float_like("bias", &e, x.dtype())?)
            } else {
                None
            };
            let eps = if g.r.chance(0.8) { 1e-5 } else { g.value() };
            g.note(format!(" dims={k} eps={eps}"));
            one(x.layer_norm(k, w.as_ref(), b.as_ref(), eps)?)
        }
        "matmul" => {
            let ra = 1 + g.r.below(4);
            let a_dims = g.dims_of_rank(ra);
            let a = g.float("a", &a_dims)?;
            let b_dims = if g.r.chance(0.7) {
                // Fits: a broadcastable batch, the same inner size, any n.
                let rb = 1 + g.r.below(4);
                let k = if ra == 1 { a_dims[0] } else { a_dims[ra - 1] };
                let mut b = g.related(&a_dims[..ra.saturating_sub(2)]);
                b.truncate(rb.saturating_sub(2));
                if rb >= 2 {
                    b.push(k);
                    b.push(g.dim());
                } else {
                    b = vec![k];
                }
                b
            } else {
                g.dims()
            };
            let b = g.float_like("b", &b_dims, a.dtype())?;
            one(a.matmul(&b)?)
        }
        "matmul_t" | "gemm_" => {
            let (m, k, n) = (g.dim(), g.dim(), g.dim());
            let (ta, tb) = (g.r.chance(0.5), g.r.chance(0.5));
            let ad = if ta { [k, m] } else { [m, k] };
            let bd = if tb { [n, k] } else { [k, n] };
            let ad = if g.r.chance(0.8) {
                ad.to_vec()
            } else {
                g.dims()
            };
            let bd = if g.r.chance(0.8) {
                bd.to_vec()
            } else {
                g.dims()
            };
            let a = g.float("a", &ad)?;
            let b = g.float_like("b", &bd, a.dtype())?;
            g.note(format!(" trans_a={ta} trans_b={tb}"));
            if op == "matmul_t" {
                return one(a.matmul_t(&b, ta, tb)?);
            }
            let cd = if g.r.chance(0.8) {
                vec![m, n]
            } else {
                g.dims()
            };
            let mut c = g.float_like("c", &cd, a.dtype())?.detach();
            let (alpha, beta) = (g.value(), g.value());
            g.note(format!(" alpha={alpha} beta={beta}"));
            c.gemm_(&a, &b, ta, tb, alpha, beta)?;
            one(c)
        }
        "linear" => {
            let (n, k, m) = (g.dim(), g.dim(), g.dim());
            let xd = if g.r.chance(0.85) {
                vec![n, k]
            } else {
                g.dims()
            };
            let wd = if g.r.chance(0.85) {
                vec![k, m]
            } else {
                g.dims()
            };
            let bd = if g.r.chance(0.85) { vec![m] } else { g.dims() };
            let x = g.float("x", &xd)?;
            let w = g.float_like("w", &wd, x.dtype())?;
            let b = g.float_like("b", &bd, x.dtype())?;
            let relu = g.r.chance(0.5);
            g.note(format!(" relu={relu}"));
            one(x.linear(&w, &b, relu)?)
        }
        "reshape" => {
            let d = g.dims();
            let x = g.float("x", &d)?;
            let rank = g.r.below(5);
            let to: Vec<i64> = (0..rank)
                .map(|_| match g.r.below(10) {
                    0 => -1,
                    1 => g.r.pick(&[-2, i64::MIN, i64::MAX, 1 << 40]),
                    _ => g.dim() as i64,
                })
                .collect();
            g.note(format!(" to={to:?}"));
            one(x.reshape(to)?)
        }
        "flatten" => {
            let d = g.dims();
            let x = g.float("x", &d)?;
            let (s, e) = (g.sdim(d.len()), g.sdim(d.len()));
            g.note(format!(" start={s} end={e}"));
            one(x.flatten(s, e)?)
        }
        "squeeze" | "unsqueeze" | "t" | "squeeze_all" => {
            let d = g.dims();
            let x = g.float("x", &d)?;
            let dim = g.sdim(d.len());
            match op {
                "squeeze" => {
                    g.note(format!(" dim={dim}"));
                    one(x.squeeze(dim)?)
                }
                "unsqueeze" => {
                    g.note(format!(" dim={dim}"));
                    one(x.unsqueeze(dim)?)
                }
                "t" => one(x.t()?),
                _ => one(x.squeeze_all()?),
            }
        }
        "permute" => {
            let d = g.dims();
            let x = g.float("x", &d)?;
            let mut p: Vec<isize> = (0..d.len() as isize).collect();
            for i in (1..p.len()).rev() {
                p.swap(i, g.r.below(i + 1));
            }
            if g.r.chance(0.3) {
                p = g.sdims(d.len());
            }
            g.note(format!(" dims={p:?}"));
            one(x.permute(&p)?)
        }
        "transpose" | "movedim" => {
            let d = g.dims();
            let x = g.float("x", &d)?;
            let (a, b) = (g.sdim(d.len()), g.sdim(d.len()));
            g.note(format!(" ({a}, {b})"));
            one(if op == "transpose" {
                x.transpose(a, b)?
            } else {
                x.movedim(a, b)?
            })
        }
        "transpose_last2" => {
            let d = g.dims();
            let x = g.float("x", &d)?;
            one(x.transpose_last2()?)
        }
        "split" | "chunk" => {
            let d = g.dims();
            let x = g.float("x", &d)?;
            let (n, dim) = (g.arg(), g.sdim(d.len()));
            g.note(format!(" ({n}, dim {dim})"));
            if op == "split" {
                x.split(n, dim)
            } else {
                x.chunk(n, dim)
            }
        }
        "narrow" => {
            let d = g.dims();
            let x = g.float("x", &d)?;
            let (dim, start, len) = (g.sdim(d.len()), g.arg(), g.arg());
            g.note(format!(" dim={dim} start={start} len={len}"));
            one(x.narrow(dim, start, len)?)
        }
        "stack" | "cat" => {
            let d = g.dims();
            let count = g.r.below(4);
            let mut ts = Vec::new();
            let mut dt = DType::F32;
            for i in 0..count {
                let e = if i == 0 || g.r.chance(0.3) {
                    g.related(&d)
                } else {
                    d.clone()
                };
                let t = g.float_like(&format!("t{i}"), &e, dt)?;
                dt = t.dtype();
                ts.push(t);
            }
            let refs: Vec<&Tensor> = ts.iter().collect();
            let dim = g.sdim(d.len() + usize::from(op == "stack"));
            g.note(format!(" dim={dim}"));
            one(if op == "stack" {
                Tensor::stack(&refs, dim)?
            } else {
                Tensor::cat(&refs, dim)?
            })
        }
        "index_select" => {
            let d = g.dims();
            let x = g.float("x", &d)?;
            let dim = g.sdim(d.len());
            let bound = usize::try_from(dim)
                .ok()
                .and_then(|i| d.get(i))
                .copied()
                .unwrap_or(4);
            let id = if g.r.chance(0.85) {
                vec![g.r.below(6)]
            } else {
                g.dims()
            };
            let idx = g.indices("idx", &id, bound)?;
            g.note(format!(" dim={dim}"));
            one(x.index_select(dim, &idx)?)
        }
        "gather" => {
            let d = g.dims();
            let x = g.float("x", &d)?;
            let dim = g.sdim(d.len());
            let i = usize::try_from(dim).ok().filter(|&i| i < d.len());
            let mut id = if g.r.chance(0.8) { d.clone() } else { g.dims() };
            if let Some(i) = i
                && i < id.len()
            {
                id[i] = g.dim();
            }
            let bound = i.map_or(4, |i| d[i]);
            let idx = g.indices("idx", &id, bound)?;
            g.note(format!(" dim={dim}"));
            one(x.gather(dim, &idx)?)
        }
        "embedding" => {
            let td = if g.r.chance(0.85) {
                vec![g.dim(), g.dim()]
            } else {
                g.dims()
            };
            let table = g.float("table", &td)?;
            let id = g.dims();
            let idx = g.indices("idx", &id, td.first().copied().unwrap_or(1))?;
            one(table.embedding(&idx)?)
        }
        "one_hot" => {
            let id = if g.r.chance(0.8) {
                vec![g.dim()]
            } else {
                g.dims()
            };
            let classes = g.arg();
            let idx = g.indices("idx", &id, classes)?;
            let dt = g.float_dtype();
            g.note(format!(" classes={classes} dtype={dt}"));
            one(idx.one_hot(classes, dt)?)
        }
        "gather_bytes" => {
            let rows = g.dim();
            let row_len = g.arg();
            let words = small_product(&[rows, row_len], 7).div_ceil(4);
            let src = g.tensor("src", &[words], DType::U32)?;
            let pd = [g.dim()];
            let perm = g.indices("perm", &pd, rows)?;
            let (offset, count) = (g.arg(), g.arg());
            let dt = g.r.pick(&[DType::F32, DType::U32, DType::F16]);
            g.note(format!(
                " offset={offset} count={count} row_len={row_len} dtype={dt}"
            ));
            one(src.gather_bytes(&perm, offset, count, row_len, 1.0 / 255.0, dt)?)
        }
        "zeros" | "full" | "randn" => {
            let d = g.dims();
            let dt = g.float_dtype();
            g.note(format!(" shape={d:?} dtype={dt}"));
            one(match op {
                "zeros" => Tensor::zeros(d, dt, g.dev)?,
                "full" => {
                    let v = g.value();
                    Tensor::full(d, v, g.dev)?
                }
                _ => Tensor::randn(d, g.value(), g.value(), g.r.next(), g.dev)?,
            })
        }
        "arange" => {
            let (a, b, s) = (g.value(), g.value(), g.value());
            let (a, b, mut s) = if g.r.chance(0.5) {
                (a.round(), b.round() * 10.0, s.round().abs().max(0.5))
            } else {
                (a, b, s)
            };
            // A count that is neither small nor refused (10^5 to 10^13 elements) would only
            // spend memory and time: take a step that gives a few elements instead.
            let count = ((b - a) / s).ceil();
            if count > 1e5 && count < 1e13 {
                s = (b - a) / 7.0;
            }
            g.note(format!(" {a}..{b} by {s}"));
            one(Tensor::arange(a, b, s, g.dev)?)
        }
        "from_slice" => {
            let d = g.dims();
            let n = small_product(&d, 3) + g.r.below(2);
            g.note(format!(" {n} values into {d:?}"));
            let v: Vec<f32> = (0..n).map(|_| g.value()).collect();
            one(Tensor::from_slice(&v, d, g.dev)?)
        }
        "to_dtype" => {
            let d = g.dims();
            let x = g.float("x", &d)?;
            let dt = g.r.pick(&[DType::F32, DType::F16, DType::U32]);
            g.note(format!(" to {dt}"));
            one(x.to_dtype(dt)?)
        }
        "to_device" => {
            let d = g.dims();
            let dt = g.r.pick(&[DType::F32, DType::F16, DType::U32]);
            let dt = if dt == DType::F16 && !g.f16 {
                DType::F32
            } else {
                dt
            };
            let x = g.tensor("x", &d, dt)?;
            let there = if g.dev.is_gpu() {
                Device::cpu()
            } else {
                g.dev.clone()
            };
            g.note(format!(" to {there} and back"));
            let y = x.to_device(&there)?;
            one(y.to_device(g.dev)?)
        }
        "try_clone" | "item" => {
            let d = g.dims();
            let dt = g.float_dtype();
            let x = g.tensor("x", &d, dt)?;
            if op == "item" {
                x.item()?;
                return Ok(vec![]);
            }
            one(x.try_clone()?)
        }
        "fill_" | "axpy_" => {
            let d = g.dims();
            let mut x = g.float("x", &d)?;
            let v = g.value();
            g.note(format!(" value={v}"));
            if op == "fill_" {
                x.fill_(v)?;
            } else {
                let e = g.related(&d);
                let y = g.float_like("y", &e, x.dtype())?;
                x.axpy_(v, &y)?;
            }
            one(x)
        }
        "backward_with" => {
            let d = g.dims();
            let x = g.float("x", &d)?;
            let y = x.tanh()?;
            let e = g.related(&d);
            let dy = g.float_like("dy", &e, x.dtype())?;
            y.backward_with(&dy)?;
            Ok(x.grad().into_iter().collect())
        }
        "read_scalars" => {
            let count = g.r.below(4);
            let mut ts = Vec::new();
            for i in 0..count {
                let d = if g.r.chance(0.8) { vec![] } else { g.dims() };
                let dt = g.r.pick(&[DType::F32, DType::U32]);
                ts.push(g.tensor(&format!("t{i}"), &d, dt)?);
            }
            let refs: Vec<&Tensor> = ts.iter().collect();
            Tensor::read_scalars(&refs)?;
            Ok(vec![])
        }
        other => unreachable!("no case for op {other}"),
    }
}
