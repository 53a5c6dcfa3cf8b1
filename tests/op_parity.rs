//! Op parity with PyTorch: `benches/op_parity.py` wrote, with PyTorch, the inputs, outputs
//! and input gradients (of `sum(out · gout)`) of ~150 cases over 60 ops — random shapes,
//! broadcasting, batch dims — into `tests/fixtures/op_parity.{json,safetensors}`. Each case
//! runs here on the CPU and on every GPU adapter; forward values and gradients must match
//! within `|got - want| ≤ 2e-5 + 2e-4·|want|` (f32; PyTorch's CPU kernels and ours sum in
//! different orders, and the WGSL `exp`/`log` differ from libm by a few ulp).

mod common;

use safetensors::{Dtype, SafeTensors};
use serde_json::Value;
use wgnn::nn::{self, Reduction};
use wgnn::{Device, Result, Tensor};

const ATOL: f32 = 2e-5;
const RTOL: f32 = 2e-4;

struct Fixtures {
    cases: Vec<Value>,
    bytes: Vec<u8>,
}

fn fixtures() -> Fixtures {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
    let json: Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{dir}/op_parity.json")).expect("fixture json"),
    )
    .expect("fixture json parses");
    Fixtures {
        cases: json["cases"].as_array().expect("cases").clone(),
        bytes: std::fs::read(format!("{dir}/op_parity.safetensors")).expect("fixture tensors"),
    }
}

/// A stored tensor: (shape, f32 values) — int64 ones converted.
fn load(st: &SafeTensors, name: &str) -> (Vec<usize>, Vec<f32>) {
    let t = st.tensor(name).unwrap_or_else(|e| panic!("{name}: {e}"));
    let data = t.data();
    let vals = match t.dtype() {
        Dtype::F32 => data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::I64 => data
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")) as f32)
            .collect(),
        d => panic!("{name}: unexpected dtype {d:?}"),
    };
    (t.shape().to_vec(), vals)
}

fn int_tensor(st: &SafeTensors, name: &str, dev: &Device) -> Result<Tensor> {
    let (shape, v) = load(st, name);
    let idx: Vec<u32> = v.iter().map(|&x| x as u32).collect();
    Tensor::from_vec(idx, shape, dev)
}

fn dims(v: &Value) -> Vec<isize> {
    v.as_array()
        .expect("dims")
        .iter()
        .map(|d| d.as_i64().expect("dim") as isize)
        .collect()
}

fn int(v: &Value) -> isize {
    v.as_i64().expect("an integer arg") as isize
}

fn num(v: &Value) -> f32 {
    v.as_f64().expect("a number arg") as f32
}

fn reduction(args: &Value) -> Reduction {
    match args["reduction"].as_str() {
        Some("sum") => Reduction::Sum,
        Some("none") => Reduction::None,
        _ => Reduction::Mean,
    }
}

/// The wgnn call for one case.
fn apply(op: &str, args: &Value, x: &[Tensor]) -> Result<Tensor> {
    let all = |t: &Tensor| -> Vec<isize> { (0..t.dims().len() as isize).collect() };
    let dims_or_all = |t: &Tensor| -> Vec<isize> {
        if args["dims"].is_null() {
            all(t)
        } else {
            dims(&args["dims"])
        }
    };
    let keep = args["keepdim"].as_bool().unwrap_or(false);
    Ok(match op {
        "add" => x[0].add(&x[1])?,
        "sub" => (&x[0] - &x[1])?,
        "mul" => (&x[0] * &x[1])?,
        "div" => (&x[0] / &x[1])?,
        "pow" => x[0].pow(&x[1])?,
        "maximum" => x[0].maximum(&x[1])?,
        "minimum" => x[0].minimum(&x[1])?,
        "eq" => x[0].eq(&x[1])?,
        "lt" => x[0].lt(&x[1])?,
        "gt" => x[0].gt(&x[1])?,
        "le" => x[0].le(&x[1])?,
        "ge" => x[0].ge(&x[1])?,
        "add_scalar" => (&x[0] + num(&args["value"]))?,
        "mul_scalar" => (&x[0] * num(&args["value"]))?,
        "pow_scalar" => x[0].powf(num(&args["exponent"]))?,
        "neg" => (-&x[0])?,
        "abs" => x[0].abs()?,
        "sqrt" => x[0].sqrt()?,
        "rsqrt" => x[0].rsqrt()?,
        "exp" => x[0].exp()?,
        "log" => x[0].log()?,
        "tanh" => x[0].tanh()?,
        "sigmoid" => x[0].sigmoid()?,
        "relu" => x[0].relu()?,
        "gelu" => x[0].gelu()?,
        "silu" => x[0].silu()?,
        "softplus" => x[0].softplus()?,
        "leaky_relu" => x[0].leaky_relu(num(&args["negative_slope"]))?,
        "clamp" => match args.get("max") {
            Some(m) if !m.is_null() => x[0].clamp(num(&args["min"]), num(m))?,
            _ => x[0].clamp_min(num(&args["min"]))?,
        },
        "matmul" => x[0].matmul(&x[1])?,
        "transpose" => x[0].transpose(int(&args["dim0"]), int(&args["dim1"]))?,
        "permute" => x[0].permute(&dims(&args["dims"]))?,
        "reshape" => x[0].reshape(dims(&args["shape"]))?,
        "flatten" => x[0].flatten(int(&args["start_dim"]), int(&args["end_dim"]))?,
        "squeeze" => x[0].squeeze(int(&args["dim"]))?,
        "unsqueeze" => x[0].unsqueeze(int(&args["dim"]))?,
        "expand" => {
            let s: Vec<usize> = dims(&args["shape"]).iter().map(|&d| d as usize).collect();
            x[0].expand(s)?
        }
        "cat" => Tensor::cat(&x.iter().collect::<Vec<_>>(), int(&args["dim"]))?,
        "stack" => Tensor::stack(&x.iter().collect::<Vec<_>>(), int(&args["dim"]))?,
        "narrow" => x[0].narrow(
            int(&args["dim"]),
            int(&args["start"]) as usize,
            int(&args["length"]) as usize,
        )?,
        "sum" if args["dims"].is_null() => x[0].sum()?,
        "sum" => x[0].sum_dim(&dims_or_all(&x[0]), keep)?,
        "mean" if args["dims"].is_null() => x[0].mean()?,
        "mean" => x[0].mean_dim(&dims_or_all(&x[0]), keep)?,
        "var" => {
            let corr = args["correction"].as_u64().unwrap_or(1) as usize;
            x[0].var_dim(&dims_or_all(&x[0]), corr, keep)?
        }
        "logsumexp" => x[0].logsumexp(&dims_or_all(&x[0]), keep)?,
        "amax" => x[0].amax(&dims_or_all(&x[0]), keep)?,
        "max" => x[0].max_dim(int(&args["dim"]), keep)?.0,
        "min" => x[0].min_dim(int(&args["dim"]), keep)?.0,
        "argmax" => x[0].argmax(int(&args["dim"]), keep)?,
        "softmax" => x[0].softmax(int(&args["dim"]))?,
        "log_softmax" => x[0].log_softmax(int(&args["dim"]))?,
        "cross_entropy" => nn::cross_entropy_with(&x[0], &x[1], reduction(args))?,
        "nll_loss" => nn::nll_loss_with(&x[0], &x[1], reduction(args))?,
        "mse_loss" => nn::mse_loss(&x[0], &x[1])?,
        "binary_cross_entropy_with_logits" => nn::bce_with_logits(&x[0], &x[1])?,
        "index_select" => x[0].index_select(int(&args["dim"]), &x[1])?,
        "gather" => x[0].gather(int(&args["dim"]), &x[1])?,
        "where" => Tensor::where_(&x[0], &x[1], &x[2])?,
        "masked_fill" => x[0].masked_fill(&x[1], num(&args["value"]))?,
        "linear" => x[0].linear(&x[1].t()?, &x[2], false)?,
        "layer_norm" => {
            let n = args["normalized_shape"].as_array().expect("shape").len();
            x[0].layer_norm(n, Some(&x[1]), Some(&x[2]), num(&args["eps"]))?
        }
        other => panic!("op_parity: no wgnn call for op {other:?}"),
    })
}

fn close(
    what: &str,
    got: &Tensor,
    want: (Vec<usize>, Vec<f32>),
) -> std::result::Result<(), String> {
    if got.dims() != want.0.as_slice() {
        return Err(format!(
            "{what}: shape {:?}, PyTorch {:?}",
            got.dims(),
            want.0
        ));
    }
    let got: Vec<f32> = if got.dtype() == wgnn::DType::U32 {
        got.to_vec::<u32>()
            .map_err(|e| e.to_string())?
            .iter()
            .map(|&v| v as f32)
            .collect()
    } else {
        got.to_dtype(wgnn::DType::F32)
            .and_then(|t| t.to_vec::<f32>())
            .map_err(|e| e.to_string())?
    };
    for (i, (g, w)) in got.iter().zip(&want.1).enumerate() {
        if (g - w).abs() > ATOL + RTOL * w.abs() || g.is_nan() != w.is_nan() {
            return Err(format!("{what}[{i}]: {g}, PyTorch {w}"));
        }
    }
    Ok(())
}

fn run_case(st: &SafeTensors, case: &Value, dev: &Device) -> std::result::Result<(), String> {
    let name = case["name"].as_str().expect("name");
    let op = case["op"].as_str().expect("op");
    let inputs = case["inputs"].as_array().expect("inputs");
    let ints = case["int_inputs"].as_array().expect("int_inputs");
    let wants = case["grad_inputs"].as_array().expect("grad_inputs");
    let err = |e: wgnn::Error| format!("{name} ({op}): {e}");
    let mut xs = Vec::new();
    for (k, input) in inputs.iter().enumerate() {
        let input = input.as_str().expect("input name");
        let t = if ints[k].as_bool() == Some(true) {
            int_tensor(st, input, dev).map_err(err)?
        } else {
            let (shape, v) = load(st, input);
            let t = Tensor::from_vec(v, shape, dev).map_err(err)?;
            if wants[k].as_bool() == Some(true) {
                t.requiring_grad().map_err(err)?
            } else {
                t
            }
        };
        xs.push(t);
    }
    let out = apply(op, &case["args"], &xs).map_err(err)?;
    close(
        &format!("{name} ({op}) output"),
        &out,
        load(st, case["output"].as_str().expect("output")),
    )?;
    let Some(gout) = case["grad_output"].as_str() else {
        return Ok(());
    };
    let (gshape, gv) = load(st, gout);
    let g = Tensor::from_vec(gv, gshape, dev).map_err(err)?;
    out.backward_with(&g).map_err(err)?;
    for (k, want) in case["grads"].as_array().expect("grads").iter().enumerate() {
        let Some(want) = want.as_str() else { continue };
        let got = xs[k]
            .grad()
            .ok_or_else(|| format!("{name} ({op}): no gradient reached input {k}"))?;
        close(
            &format!("{name} ({op}) grad of input {k}"),
            &got,
            load(st, want),
        )?;
    }
    Ok(())
}

#[test]
fn ops_match_pytorch_forward_and_backward_on_every_device() {
    let f = fixtures();
    let st = SafeTensors::deserialize(&f.bytes).expect("safetensors");
    assert!(f.cases.len() >= 90, "fixtures hold {} cases", f.cases.len());
    let ops: std::collections::BTreeSet<&str> = f
        .cases
        .iter()
        .map(|c| c["op"].as_str().expect("op"))
        .collect();
    assert!(ops.len() >= 40, "fixtures cover {} ops", ops.len());
    for dev in common::all_devices() {
        let failures: Vec<String> = f
            .cases
            .iter()
            .filter_map(|c| run_case(&st, c, &dev).err())
            .collect();
        assert!(
            failures.is_empty(),
            "on {dev}: {} of {} cases differ from PyTorch:\n{}",
            failures.len(),
            f.cases.len(),
            failures.join("\n")
        );
    }
}
