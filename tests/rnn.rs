//! Recurrent layers (RNN, GRU, LSTM): gradients through 5 time steps against central
//! differences on the CPU and on every GPU adapter (the initial state's too, and through the
//! final state), the fused GPU cell kernels against the CPU reference forward and backward,
//! and the shapes, options and errors a PyTorch user expects.

mod common;

use common::grad::*;
use wgnn::nn::{Module, ModuleExt, Param, Part, Parts, Recurrent, RnnCell, RnnOptions, RnnState};
use wgnn::{Device, Tensor};

const CELLS: [RnnCell; 3] = [RnnCell::Tanh, RnnCell::Gru, RnnCell::Lstm];

/// A recurrent network with its initial state as parameters, whose output is the outputs at
/// every step followed by the final state, flattened: its gradient check covers `h_0` (and
/// `c_0`) and the paths through `h_n` (and `c_n`) too.
struct Stateful {
    rnn: Recurrent,
    h0: Param,
    c0: Option<Param>,
}

impl Stateful {
    fn new(cell: RnnCell, options: RnnOptions, dev: &Device, seed: u64) -> Stateful {
        let (f, h) = (3, 4);
        let rnn = Recurrent::new(cell, f, h, options, dev).unwrap();
        let layers = options.num_layers;
        let state = |s: u64| {
            let v = randn(layers * 2 * h, 0.0, 0.5, s);
            Param::new(Tensor::from_slice(&v, [layers, 2, h], dev).unwrap(), false).unwrap()
        };
        Stateful {
            rnn,
            h0: state(seed),
            c0: (cell == RnnCell::Lstm).then(|| state(seed + 1)),
        }
    }
}

impl Parts for Stateful {
    fn parts(&mut self) -> Vec<(String, Part<'_>)> {
        let mut parts = self.rnn.parts();
        parts.push(("h0".into(), Part::Param(&mut self.h0)));
        if let Some(c0) = &mut self.c0 {
            parts.push(("c0".into(), Part::Param(c0)));
        }
        parts
    }
}

impl Module for Stateful {
    fn forward(&mut self, x: &Tensor) -> wgnn::Result<Tensor> {
        let state = RnnState {
            h: self.h0.value().clone(),
            c: self.c0.as_ref().map(|p| p.value().clone()),
        };
        let (out, last) = self.rnn.forward_with_state(x, Some(&state))?;
        let mut parts = vec![out.reshape([-1])?, last.h.reshape([-1])?];
        if let Some(c) = &last.c {
            parts.push(c.reshape([-1])?);
        }
        Tensor::cat(&parts.iter().collect::<Vec<_>>(), 0)
    }
}

/// Weights U(±1/2) (PyTorch's bound for H = 4), x and the state N(0, 0.5²): gate
/// pre-activations stay within a few units, so tanh and σ are smooth and far from
/// saturation. L sums ~100 outputs, each a chain of ≲ 5 steps × ~20 f32 ops (≲ 1e-6 each):
/// with h = 1e-2 the rounding term is ≈ √100·1e-6/0.02 ≈ 5e-4 at worst, truncation
/// h²/6·|∂³L| ≈ 2e-5·few. atol 5e-4, rtol 2e-3.
const RECURRENT: Fd = fd(1e-2, 5e-4, 2e-3);

#[test]
fn gradients_through_five_steps_match_central_differences() {
    for dev in common::all_devices() {
        for cell in CELLS {
            for (layers, batch_first) in [(1, false), (2, true)] {
                let options = RnnOptions::default()
                    .layers(layers)
                    .batch_first(batch_first);
                let mut net = Stateful::new(cell, options, &dev, 11);
                // 5 steps, batch 2, 3 features.
                let shape = if batch_first { [2, 5, 3] } else { [5, 2, 3] };
                let x = randn(30, 0.0, 0.5, 7);
                let what = format!(
                    "{} ({layers} layers, batch_first {batch_first})",
                    cell.name()
                );
                check_layer(&what, &dev, &mut net, &x, &shape, RECURRENT, RECURRENT, 21);
            }
        }
    }
}

/// The fused GPU cell kernels against the CPU reference: the same weights, input and state
/// give the same outputs, final state and every gradient (8 steps, batch 5, hidden 33, so
/// the threads of a step do not fill whole workgroups).
#[test]
fn gpu_cells_match_the_cpu_forward_and_backward() {
    let gpus = common::gpus();
    if gpus.is_empty() {
        common::report_gpu_skip("rnn::gpu_cells_match_the_cpu_forward_and_backward");
        return;
    }
    let cpu = Device::cpu();
    for gpu in gpus {
        for cell in CELLS {
            let options = RnnOptions::default().layers(2);
            // One set of weights for both devices (not the global generator, which tests on
            // other threads draw from too).
            let weights = Recurrent::new(cell, 6, 33, options, &cpu)
                .unwrap()
                .state_dict();
            let run = |dev: &Device| -> Vec<(String, Vec<f32>)> {
                let mut rnn = Recurrent::new(cell, 6, 33, options, dev).unwrap();
                rnn.load_state_dict(&weights, true).unwrap();
                let x = Tensor::from_slice(&randn(8 * 5 * 6, 0.0, 1.0, 4), [8, 5, 6], dev)
                    .unwrap()
                    .requiring_grad()
                    .unwrap();
                let mut st = rnn.zero_state(5, dev).unwrap();
                st.h =
                    Tensor::from_slice(&randn(2 * 5 * 33, 0.0, 0.5, 5), [2, 5, 33], dev).unwrap();
                let (out, last) = rnn.forward_with_state(&x, Some(&st)).unwrap();
                let r =
                    Tensor::from_slice(&randn(out.numel(), 0.0, 1.0, 6), out.dims(), dev).unwrap();
                out.backward_with(&r).unwrap();
                let mut got = vec![
                    ("output".to_string(), out.to_vec::<f32>().unwrap()),
                    ("h_n".to_string(), last.h.to_vec::<f32>().unwrap()),
                    ("dx".to_string(), x.grad().unwrap().to_vec::<f32>().unwrap()),
                ];
                if let Some(c) = &last.c {
                    got.push(("c_n".to_string(), c.to_vec::<f32>().unwrap()));
                }
                for (name, p) in rnn.named_parameters() {
                    got.push((
                        format!("d{name}"),
                        p.grad().unwrap().to_vec::<f32>().unwrap(),
                    ));
                }
                got
            };
            let (want, got) = (run(&cpu), run(&gpu));
            assert_eq!(want.len(), got.len());
            for ((name, w), (_, g)) in want.iter().zip(&got) {
                common::assert_close(
                    &format!("{} {name} on {gpu}", cell.name()),
                    g,
                    w,
                    1e-4,
                    1e-3,
                );
            }
        }
    }
}

/// `forward_tokens` (the first layer's projection looked up by token) gives what
/// `forward_with_state` gives on the one-hot vectors, output, state and every gradient, on
/// the CPU and every GPU, time-major and `batch_first`; bad ids are errors.
#[test]
fn token_inputs_equal_one_hot_inputs() {
    let (vocab, hidden, steps, batch) = (7, 33, 6, 5);
    let cpu = Device::cpu();
    for dev in common::all_devices() {
        for cell in CELLS {
            for batch_first in [false, true] {
                let options = RnnOptions::default().layers(2).batch_first(batch_first);
                let weights = Recurrent::new(cell, vocab, hidden, options, &cpu)
                    .unwrap()
                    .state_dict();
                let dims = match batch_first {
                    true => [batch, steps],
                    false => [steps, batch],
                };
                let ids: Vec<u32> = (0..steps * batch).map(|i| (i * 5 % vocab) as u32).collect();
                let ids = Tensor::from_slice(&ids, dims, &dev).unwrap();
                let run = |tokens: bool| -> Vec<(String, Vec<f32>)> {
                    let mut rnn = Recurrent::new(cell, vocab, hidden, options, &dev).unwrap();
                    rnn.load_state_dict(&weights, true).unwrap();
                    let (out, last) = match tokens {
                        true => rnn.forward_tokens(&ids, None).unwrap(),
                        false => {
                            let x = ids
                                .reshape([-1])
                                .unwrap()
                                .one_hot(vocab, wgnn::DType::F32)
                                .unwrap()
                                .reshape([dims[0], dims[1], vocab])
                                .unwrap();
                            rnn.forward_with_state(&x, None).unwrap()
                        }
                    };
                    let r = Tensor::from_slice(&randn(out.numel(), 0.0, 1.0, 9), out.dims(), &dev)
                        .unwrap();
                    out.backward_with(&r).unwrap();
                    let mut got = vec![
                        ("output".to_string(), out.to_vec::<f32>().unwrap()),
                        ("h_n".to_string(), last.h.to_vec::<f32>().unwrap()),
                    ];
                    for (name, p) in rnn.named_parameters() {
                        got.push((
                            format!("d{name}"),
                            p.grad().unwrap().to_vec::<f32>().unwrap(),
                        ));
                    }
                    got
                };
                let (want, got) = (run(false), run(true));
                assert_eq!(want.len(), got.len());
                for ((name, w), (_, g)) in want.iter().zip(&got) {
                    let what = format!(
                        "{} {name} on {dev} (batch_first {batch_first})",
                        cell.name()
                    );
                    common::assert_close(&what, g, w, 1e-5, 1e-5);
                }
            }
        }
        let mut rnn =
            Recurrent::new(RnnCell::Lstm, vocab, hidden, RnnOptions::default(), &dev).unwrap();
        let bad = [
            (
                Tensor::from_slice(&[1u32, 2, 3], [3], &dev).unwrap(),
                "rank 2",
            ),
            (
                Tensor::from_slice(&[1f32, 2.0], [1, 2], &dev).unwrap(),
                "u32",
            ),
        ];
        for (ids, want) in bad {
            let Err(e) = rnn.forward_tokens(&ids, None) else {
                panic!("{dev}: ids {} were accepted", ids.shape());
            };
            assert!(e.to_string().contains(want), "{dev}: {e}");
        }
        if !dev.is_gpu() {
            // Out of the vocabulary: an error naming the id, not a read past the table.
            let ids = Tensor::from_slice(&[1u32, 7], [2, 1], &dev).unwrap();
            let Err(e) = rnn.forward_tokens(&ids, None) else {
                panic!("id 7 of a 7-token vocabulary was accepted");
            };
            assert!(e.to_string().contains('7'), "{e}");
        }
    }
}

#[test]
fn shapes_names_and_errors_are_pytorchs() -> wgnn::Result<()> {
    let cpu = Device::cpu();
    let mut lstm = wgnn::nn::Lstm::with_options(10, 20, RnnOptions::default().layers(2), &cpu)?;
    let names: Vec<(String, Vec<usize>)> = lstm
        .named_parameters()
        .into_iter()
        .map(|(n, p)| (n, p.value().dims().to_vec()))
        .collect();
    assert_eq!(
        names[..4],
        [
            ("weight_ih_l0".to_string(), vec![80, 10]),
            ("weight_hh_l0".to_string(), vec![80, 20]),
            ("bias_ih_l0".to_string(), vec![80]),
            ("bias_hh_l0".to_string(), vec![80]),
        ]
    );
    assert_eq!(names[4], ("weight_ih_l1".to_string(), vec![80, 20]));
    let x = Tensor::zeros([7, 3, 10], wgnn::DType::F32, &cpu)?;
    let (out, st) = lstm.forward_with_state(&x, None)?;
    assert_eq!(out.dims(), [7, 3, 20]);
    assert_eq!(st.h.dims(), [2, 3, 20]);
    assert_eq!(
        st.c.as_ref().map(|c| c.dims().to_vec()),
        Some(vec![2, 3, 20])
    );
    // The last output is the last layer's final state.
    let last = out.narrow(0, 6, 1)?.to_vec::<f32>()?;
    assert_eq!(last, st.h.narrow(0, 1, 1)?.to_vec::<f32>()?);

    let mut gru = wgnn::nn::Gru::with_options(4, 5, RnnOptions::default().batch_first(true), &cpu)?;
    let x = Tensor::zeros([3, 9, 4], wgnn::DType::F32, &cpu)?;
    let (out, st) = gru.forward_with_state(&x, None)?;
    assert_eq!(
        (out.dims(), st.h.dims(), st.c.is_none()),
        ([3, 9, 5].as_slice(), [1, 3, 5].as_slice(), true)
    );

    let msg = |r: wgnn::Result<(Tensor, RnnState)>| r.map(|_| ()).unwrap_err().to_string();
    let bad = Tensor::zeros([7, 3, 11], wgnn::DType::F32, &cpu)?;
    let e = msg(lstm.forward_with_state(&bad, None));
    assert!(
        e.contains("LSTM") && e.contains("11 features") && e.contains("takes 10"),
        "{e}"
    );
    let e = msg(lstm.forward_with_state(&Tensor::zeros([3, 10], wgnn::DType::F32, &cpu)?, None));
    assert!(e.contains("rank 3"), "{e}");
    let wrong = RnnState {
        h: Tensor::zeros([1, 3, 20], wgnn::DType::F32, &cpu)?,
        c: None,
    };
    let x = Tensor::zeros([7, 3, 10], wgnn::DType::F32, &cpu)?;
    let e = msg(lstm.forward_with_state(&x, Some(&wrong)));
    assert!(e.contains("[1, 3, 20]") && e.contains("[2, 3, 20]"), "{e}");
    let e = wgnn::nn::Rnn::new(0, 4, &cpu)
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(e.contains("input_size"), "{e}");
    let e = wgnn::nn::Lstm::with_options(3, 4, RnnOptions::default().dropout(1.5), &cpu)
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(e.contains("dropout"), "{e}");
    Ok(())
}

/// One training step of d2l's language model (one-hot ids → LSTM → linear → cross-entropy,
/// backward, global-norm clipping, SGD), the loss summed on the device.
fn lm_step(
    model: &mut wgnn::models::RnnLm,
    opt: &mut wgnn::optim::Optimizer,
    x: &Tensor,
    y: &Tensor,
    state: &RnnState,
    loss_sum: &mut Tensor,
) -> wgnn::Result<RnnState> {
    let (logits, next) = model.forward_ids(x, Some(state))?;
    let loss = wgnn::nn::cross_entropy(&logits, y)?;
    loss.backward()?;
    wgnn::optim::clip_grad_norm(model.named_parameters(), 1.0)?;
    opt.step(model.named_parameters())?;
    model.zero_grad();
    *loss_sum = loss_sum.add(&loss.detach().reshape([1])?)?;
    Ok(next.detach())
}

/// On a GPU, a training step of the LSTM language model over 35 time steps records
/// everything into one submit and uploads nothing but the batch of token ids (X and Y); the
/// dispatches per time step (forward and backward) are printed.
#[test]
fn lstm_lm_training_step_is_one_submit() -> wgnn::Result<()> {
    let gpus = common::fresh_gpus();
    if gpus.is_empty() {
        common::report_gpu_skip("rnn::lstm_lm_training_step_is_one_submit");
        return Ok(());
    }
    for dev in gpus {
        wgnn::manual_seed(1);
        let (vocab, batch) = (28, 4);
        let mut model = wgnn::models::RnnLm::new(RnnCell::Lstm, vocab, 32, 1, &dev)?;
        let mut opt = wgnn::optim::Optimizer::sgd(1.0);
        let mut loss_sum = Tensor::zeros([1], wgnn::DType::F32, &dev)?;
        let mut state = model.rnn.zero_state(batch, &dev)?;
        let mut measure = |steps: usize| -> wgnn::Result<wgnn::gpu::Counters> {
            let ids: Vec<u32> = (0..steps * batch).map(|i| (i * 7 % vocab) as u32).collect();
            let next: Vec<u32> = ids.iter().map(|&t| (t + 1) % vocab as u32).collect();
            let mut run = || -> wgnn::Result<wgnn::gpu::Counters> {
                dev.sync()?;
                let before = dev.counters();
                let x = Tensor::from_slice(&ids, [steps, batch], &dev)?;
                let y = Tensor::from_slice(&next, [steps * batch], &dev)?;
                state = lm_step(&mut model, &mut opt, &x, &y, &state, &mut loss_sum)?;
                dev.flush()?;
                Ok(dev.counters().since(&before))
            };
            run()?; // pipelines compile and buffers are made on the first step
            run()
        };
        let long = measure(35)?;
        let short = measure(10)?;
        assert_eq!(
            long.submits, 1,
            "{dev}: a 35-step training step took {} submits",
            long.submits
        );
        assert_eq!(long.bytes_read_back, 0, "{dev}: the step read back data");
        assert_eq!(
            long.bytes_uploaded,
            2 * 35 * 4 * 4,
            "{dev}: the step uploaded more than the token ids"
        );
        let per_step = (long.dispatches - short.dispatches) as f64 / 25.0;
        println!(
            "rnn: LSTM LM training step on {dev}: 35 time steps, {} dispatches, 1 submit, {} bytes \
             uploaded (the ids); {per_step} dispatches per time step (forward + backward)",
            long.dispatches, long.bytes_uploaded
        );
        assert!(
            per_step <= 4.0,
            "{dev}: {per_step} dispatches per time step"
        );
        let total = loss_sum.to_vec::<f32>()?[0];
        assert!(total.is_finite() && total > 0.0, "{dev}: loss sum {total}");
    }
    Ok(())
}

/// PyTorch's `nn.RNN`, `nn.GRU` and `nn.LSTM` state dicts (2 layers, input 5, hidden 7,
/// written by `benches/rnn_fixture.py` with the inputs and PyTorch's outputs) load into
/// `Rnn`, `Gru` and `Lstm` by their own names and give the same outputs and final states
/// within 1e-5, on the CPU and on every GPU.
#[test]
fn pytorch_state_dicts_load_and_agree() -> wgnn::Result<()> {
    use wgnn::nn::StateDict;
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/rnn_state_dicts.safetensors"
    );
    let file = StateDict::load(path)?;
    for dev in common::all_devices() {
        for (prefix, cell) in [
            ("rnn", RnnCell::Tanh),
            ("gru", RnnCell::Gru),
            ("lstm", RnnCell::Lstm),
        ] {
            let take = |p: &str| -> StateDict {
                file.iter()
                    .filter_map(|(n, t)| n.strip_prefix(p).map(|n| (n.to_string(), t.clone())))
                    .collect()
            };
            let (weights, io) = (take(&format!("{prefix}.")), take(&format!("{prefix}_io.")));
            let mut net = Recurrent::new(cell, 5, 7, RnnOptions::default().layers(2), &dev)?;
            let report = net.load_state_dict(&weights, true)?;
            assert!(report.is_exact(), "{prefix}: {report:?}");
            let on = |name: &str| -> wgnn::Result<Tensor> {
                let t = io
                    .get(name)
                    .unwrap_or_else(|| panic!("{prefix}_io.{name} missing"));
                Tensor::from_slice(&t.to_vec::<f32>()?, t.dims(), &dev)
            };
            let state = RnnState {
                h: on("h0")?,
                c: (cell == RnnCell::Lstm).then(|| on("c0")).transpose()?,
            };
            let (out, last) = net.forward_with_state(&on("input")?, Some(&state))?;
            let what = format!("{prefix} on {dev}");
            let want = |n: &str| on(n).and_then(|t| t.to_vec::<f32>());
            common::assert_close(
                &format!("{what}: output"),
                &out.to_vec::<f32>()?,
                &want("output")?,
                1e-5,
                0.0,
            );
            common::assert_close(
                &format!("{what}: h_n"),
                &last.h.to_vec::<f32>()?,
                &want("h_n")?,
                1e-5,
                0.0,
            );
            if let Some(c) = &last.c {
                common::assert_close(
                    &format!("{what}: c_n"),
                    &c.to_vec::<f32>()?,
                    &want("c_n")?,
                    1e-5,
                    0.0,
                );
            }
        }
    }
    Ok(())
}
