//! `conv_transpose2d` and `ConvTranspose2d`: PyTorch's values (forward and every gradient,
//! fixtures from `benches/conv_transpose_fixture.py`) for strides 1–2, paddings 0–1 and output
//! padding, a direct-sum reference over random shapes, gradients against central
//! differences, the GPU against the CPU, and bad arguments as errors.

mod common;

use common::grad::*;
use wgnn::nn::{ConvTranspose2d, Module, StateDict};
use wgnn::{Device, Tensor};

/// The transposed convolution as its definition: every input pixel scatters `w`'s window
/// into the output, `out[n, o, y·s − p + ky, x·s − p + kx] += x[n, i, y, x]·w[i, o, ky, kx]`.
#[allow(clippy::too_many_arguments)]
fn reference(
    x: &[f32],
    w: &[f32],
    b: &[f32],
    [n, cin, h, wd]: [usize; 4],
    cout: usize,
    k: usize,
    (s, p, op): (usize, usize, usize),
) -> (Vec<f32>, [usize; 4]) {
    let oh = (h - 1) * s + k + op - 2 * p;
    let ow = (wd - 1) * s + k + op - 2 * p;
    let mut out = vec![0f64; n * cout * oh * ow];
    for ni in 0..n {
        for o in 0..cout {
            for v in &mut out[(ni * cout + o) * oh * ow..][..oh * ow] {
                *v = b[o] as f64;
            }
        }
        for i in 0..cin {
            for y in 0..h {
                for xx in 0..wd {
                    let xv = x[((ni * cin + i) * h + y) * wd + xx] as f64;
                    for o in 0..cout {
                        for ky in 0..k {
                            for kx in 0..k {
                                let (oy, ox) = (y * s + ky, xx * s + kx);
                                if oy < p || ox < p || oy - p >= oh || ox - p >= ow {
                                    continue;
                                }
                                let wv = w[((i * cout + o) * k + ky) * k + kx] as f64;
                                out[((ni * cout + o) * oh + oy - p) * ow + ox - p] += xv * wv;
                            }
                        }
                    }
                }
            }
        }
    }
    (out.iter().map(|&v| v as f32).collect(), [n, cout, oh, ow])
}

/// PyTorch's outputs and gradients (`dx`, `dw`, `db` of `sum(out · r)`), within 1e-5 on the
/// CPU and 1e-4 on every GPU.
#[test]
fn matches_pytorch_forward_and_backward() -> wgnn::Result<()> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/conv_transpose.safetensors"
    );
    let file = StateDict::load(path)?;
    let cases = (0..)
        .take_while(|i| file.get(&format!("c{i}.x")).is_some())
        .count();
    assert!(cases >= 6, "the fixture has {cases} cases");
    for dev in common::all_devices() {
        let tol = if dev.is_gpu() { 1e-4 } else { 1e-5 };
        for i in 0..cases {
            let get = |name: &str| -> wgnn::Result<(Vec<f32>, Vec<usize>)> {
                let t = file.get(&format!("c{i}.{name}")).expect("fixture tensor");
                Ok((t.to_vec::<f32>()?, t.dims().to_vec()))
            };
            let on = |name: &str| -> wgnn::Result<Tensor> {
                let (v, d) = get(name)?;
                Tensor::from_slice(&v, d, &dev)
            };
            let geom = get("geom")?.0;
            let (s, p, op) = (geom[0] as usize, geom[1] as usize, geom[2] as usize);
            let x = on("x")?.requiring_grad()?;
            let w = on("w")?.requiring_grad()?;
            let b = on("b")?.requiring_grad()?;
            let out = x.conv_transpose2d(&w, Some(&b), s, p, op)?;
            let what = format!("case {i} (stride {s}, pad {p}, output_padding {op}) on {dev}");
            assert_eq!(out.dims(), get("out")?.1.as_slice(), "{what}: shape");
            common::assert_close(
                &format!("{what}: out"),
                &out.to_vec::<f32>()?,
                &get("out")?.0,
                tol,
                tol,
            );
            out.backward_with(&on("r")?)?;
            for (name, t) in [("dx", &x), ("dw", &w), ("db", &b)] {
                let g = t.grad().expect("a gradient").to_vec::<f32>()?;
                common::assert_close(&format!("{what}: {name}"), &g, &get(name)?.0, tol, tol);
            }
        }
    }
    Ok(())
}

/// Random shapes and settings against the direct sum on the CPU, and every GPU against the
/// CPU, without a bias too.
#[test]
fn matches_the_definition_on_random_shapes() -> wgnn::Result<()> {
    let cpu = Device::cpu();
    let gpus = common::gpus();
    if gpus.is_empty() {
        common::report_gpu_skip(
            "conv_transpose::matches_the_definition_on_random_shapes (GPU part)",
        );
    }
    let mut case = 0u64;
    for s in 1..=3 {
        for p in 0..=2 {
            for op in 0..s {
                for k in [1, 2, 3, 5] {
                    case += 1;
                    let r = |lo: usize, hi: usize, salt: u64| {
                        lo + (wgnn::rng::hash_u32((case * 31 + salt) as u32) as usize)
                            % (hi - lo + 1)
                    };
                    let (n, cin, cout, h, wd) =
                        (r(1, 2, 1), r(1, 4, 2), r(1, 4, 3), r(1, 6, 4), r(1, 6, 5));
                    if (h - 1) * s + k + op <= 2 * p || (wd - 1) * s + k + op <= 2 * p {
                        continue;
                    }
                    let xs = randn(n * cin * h * wd, 0.0, 1.0, case);
                    let ws = randn(cin * cout * k * k, 0.0, 0.5, case + 100);
                    let bs = randn(cout, 0.0, 1.0, case + 200);
                    let (want, dims) =
                        reference(&xs, &ws, &bs, [n, cin, h, wd], cout, k, (s, p, op));
                    let run = |dev: &Device, bias: bool| -> wgnn::Result<Tensor> {
                        let x = Tensor::from_slice(&xs, [n, cin, h, wd], dev)?;
                        let w = Tensor::from_slice(&ws, [cin, cout, k, k], dev)?;
                        let b = Tensor::from_slice(&bs, [cout], dev)?;
                        x.conv_transpose2d(&w, bias.then_some(&b), s, p, op)
                    };
                    let what = format!(
                        "[{n}, {cin}, {h}, {wd}] → {cout}, k {k}, stride {s}, pad {p}, op {op}"
                    );
                    let got = run(&cpu, true)?;
                    assert_eq!(got.dims(), dims, "{what}");
                    common::assert_close(
                        &format!("{what} on the CPU"),
                        &got.to_vec::<f32>()?,
                        &want,
                        1e-5,
                        1e-5,
                    );
                    for gpu in &gpus {
                        for bias in [true, false] {
                            let g = run(gpu, bias)?.to_vec::<f32>()?;
                            let c = run(&cpu, bias)?.to_vec::<f32>()?;
                            common::assert_close(
                                &format!("{what} on {gpu}, bias {bias}"),
                                &g,
                                &c,
                                1e-4,
                                1e-4,
                            );
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

/// `ConvTranspose2d`'s input, weight and bias gradients against central differences, for
/// stride 1 and stride 2 with padding and output padding, on the CPU and every GPU.
#[test]
fn gradients_match_central_differences() {
    for dev in common::all_devices() {
        for (s, p, op) in [(1, 0, 0), (2, 1, 1)] {
            wgnn::manual_seed(5);
            let mut layer = ConvTranspose2d::new(3, 2, 3, s, p, &dev)
                .unwrap()
                .output_padding(op)
                .unwrap();
            let x = randn(2 * 3 * 4 * 3, 0.0, 1.0, 11);
            check_layer(
                &format!("ConvTranspose2d stride {s} pad {p} op {op}"),
                &dev,
                &mut layer,
                &x,
                &[2, 3, 4, 3],
                fd(1e-2, 2e-3, 2e-3),
                fd(1e-2, 2e-3, 2e-3),
                17,
            );
        }
    }
}

/// Shapes and names as PyTorch's, and bad arguments as errors naming what is wrong.
#[test]
fn shapes_names_and_errors() -> wgnn::Result<()> {
    let dev = Device::cpu();
    let mut up = ConvTranspose2d::new(8, 4, 4, 2, 1, &dev)?;
    let y = up.forward(&Tensor::zeros([2, 8, 7, 7], wgnn::DType::F32, &dev)?)?;
    assert_eq!(y.dims(), [2, 4, 14, 14]); // DCGAN's doubling
    let names: Vec<String> = wgnn::nn::ModuleExt::named_parameters(&mut up)
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(names, ["weight", "bias"]);
    let mut plain = ConvTranspose2d::new(8, 4, 4, 1, 0, &dev)?.without_bias();
    assert_eq!(wgnn::nn::ModuleExt::named_parameters(&mut plain).len(), 1);
    let y = plain.forward(&Tensor::zeros([1, 8, 1, 1], wgnn::DType::F32, &dev)?)?;
    assert_eq!(y.dims(), [1, 4, 4, 4]); // DCGAN's first layer
    let x = Tensor::zeros([1, 3, 4, 4], wgnn::DType::F32, &dev)?;
    let w = Tensor::zeros([3, 2, 3, 3], wgnn::DType::F32, &dev)?;
    let bad: [(wgnn::Result<Tensor>, &str); 5] = [
        (
            x.conv_transpose2d(
                &Tensor::zeros([2, 2, 3, 3], wgnn::DType::F32, &dev)?,
                None,
                1,
                0,
                0,
            ),
            "3 channels",
        ),
        (x.conv_transpose2d(&w, None, 2, 0, 2), "output padding"),
        (x.conv_transpose2d(&w, None, 0, 0, 0), "stride"),
        (
            Tensor::zeros([1, 3, 1, 1], wgnn::DType::F32, &dev)?
                .conv_transpose2d(&w, None, 1, 2, 0),
            "no output",
        ),
        (
            x.conv_transpose2d(
                &w,
                Some(&Tensor::zeros([3], wgnn::DType::F32, &dev)?),
                1,
                0,
                0,
            ),
            "bias must be [2]",
        ),
    ];
    for (r, want) in bad {
        let Err(e) = r else {
            panic!("accepted; expected an error mentioning {want:?}");
        };
        assert!(e.to_string().contains(want), "{e} (expected {want:?})");
    }
    let Err(e) = ConvTranspose2d::new(4, 4, 3, 2, 0, &dev)?.output_padding(2) else {
        panic!("output_padding 2 with stride 2 was accepted");
    };
    assert!(e.to_string().contains("smaller than the stride"), "{e}");
    assert!(ConvTranspose2d::new(0, 4, 3, 1, 0, &dev).is_err());
    Ok(())
}
