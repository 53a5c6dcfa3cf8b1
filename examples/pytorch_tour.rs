//! wgnn written the way a PyTorch program is: tensors with operators and broadcasting, a
//! batched matmul, reductions over chosen dims, a derived MLP, `manual_seed`, a `DataLoader`
//! over a `TensorDataset`, a training loop, and a `state_dict` saved and loaded into a fresh
//! model. Each step prints the PyTorch line it stands for.
//!
//! ```text
//! cargo run --release --example pytorch_tour                  # the GPU if there is one
//! cargo run --release --example pytorch_tour -- --device cpu
//! ```
//!
//! `tests/pytorch_tour.rs` runs [`tour`] on the CPU and on every adapter and checks its
//! figures.

use wgnn::nn::{Dropout, Linear, Module, ModuleExt, cross_entropy};
use wgnn::optim::Optimizer;
use wgnn::prelude::*;

/// `class Mlp(nn.Module)`: the derive names the parameters after the fields
/// (`fc1.weight`, `fc2.bias`, …), the impl is only the forward.
#[derive(Module)]
pub struct Mlp {
    fc1: Linear,
    fc2: Linear,
    fc3: Linear,
    drop: Dropout,
}

impl Mlp {
    /// `Mlp(inputs, hidden, classes)` with PyTorch's default initialisation.
    pub fn new(inputs: usize, hidden: usize, classes: usize, dev: &Device) -> Result<Mlp> {
        Ok(Mlp {
            fc1: Linear::new(inputs, hidden, dev)?,
            fc2: Linear::new(hidden, hidden, dev)?,
            fc3: Linear::new(hidden, classes, dev)?,
            drop: Dropout::new(0.1)?,
        })
    }
}

impl Module for Mlp {
    fn forward(&mut self, x: &Tensor) -> Result<Tensor> {
        let h = self.fc1.forward(x)?.gelu()?;
        let h = self.drop.forward(&self.fc2.forward(&h)?.gelu()?)?;
        self.fc3.forward(&h)
    }
}

/// d2l-style three-armed spiral: `per_class` points per class, `[n, 2]` f32 and u32 labels.
fn spirals(per_class: usize, dev: &Device) -> Result<(Tensor, Tensor)> {
    let classes = 3;
    let n = per_class * classes;
    // Radius and angle per point, then the coordinates — all tensor ops on the device.
    let t = Tensor::arange(0.0, per_class as f32, 1.0, dev)?.mul_scalar(1.0 / per_class as f32)?;
    let t = t.expand([classes, per_class])?; // [3, per_class]
    let arm = Tensor::arange(0.0, classes as f32, 1.0, dev)?.reshape([classes, 1])?;
    let noise = randn([classes, per_class], dev)?.mul_scalar(0.2)?;
    let angle = ((&t * 4.0)? + &(&arm * (2.0 * std::f32::consts::PI / classes as f32))?)?;
    let angle = (angle + noise)?;
    let xy = Tensor::stack(&[&(&t * &angle.cos()?)?, &(&t * &angle.sin()?)?], -1)?;
    let labels: Vec<u32> = (0..n as u32).map(|i| i / per_class as u32).collect();
    Ok((xy.reshape([n, 2])?, Tensor::from_vec(labels, [n], dev)?))
}

/// What the tour measured (checked by `tests/pytorch_tour.rs`).
#[derive(Debug)]
pub struct TourResult {
    /// Training loss of the first and the last epoch.
    pub first_loss: f32,
    /// Training loss of the last epoch.
    pub last_loss: f32,
    /// Accuracy on the held-out points.
    pub val_accuracy: f32,
    /// Largest difference between the trained model's outputs and those of a fresh model
    /// that loaded its state dict.
    pub reload_max_diff: f32,
    /// The shapes the tensor section produced, in order.
    pub shapes: Vec<Vec<usize>>,
}

/// The whole tour on `dev`; `verbose` prints each step.
pub fn tour(dev: &Device, epochs: usize, verbose: bool) -> Result<TourResult> {
    let say = |s: String| {
        if verbose {
            println!("{s}");
        }
    };
    manual_seed(0); // torch.manual_seed(0)
    let mut shapes = Vec::new();

    // Tensors, operators, broadcasting.
    let x = randn([4, 3], dev)?; // torch.randn(4, 3)
    let b = Tensor::arange(0.0, 3.0, 1.0, dev)?; // torch.arange(3.)
    let y = ((&x * 2.0)? + &b)?; // x * 2 + b   (b broadcast over the rows)
    say(format!("x * 2 + b              -> {:?}", y.dims()));
    shapes.push(y.dims().to_vec());
    let z = y.relu()?.sub(&y.mean_dim(&[0], true)?)?; // y.relu() - y.mean(0, keepdim=True)
    say(format!("relu(y) - mean(y, 0)  -> {:?}", z.dims()));
    shapes.push(z.dims().to_vec());

    // A batched matmul with broadcast batch dims, and a batch times one matrix.
    let a = randn([8, 1, 4, 5], dev)?;
    let m = randn([3, 5, 2], dev)?;
    let p = a.matmul(&m)?; // a @ m  -> [8, 3, 4, 2]
    say(format!("[8,1,4,5] @ [3,5,2]   -> {:?}", p.dims()));
    shapes.push(p.dims().to_vec());
    let q = p.transpose(1, 2)?.flatten(2, -1)?; // p.transpose(1, 2).flatten(2)
    say(format!("transpose, flatten    -> {:?}", q.dims()));
    shapes.push(q.dims().to_vec());

    // Reductions over chosen dims.
    let (vals, idx) = q.max_dim(-1, false)?; // q.max(-1)
    let s = q.softmax(-1)?.sum_dim(&[-1], false)?; // rows of a softmax sum to 1
    let lse = q.logsumexp(&[1, 2], true)?;
    say(format!(
        "max(-1) {:?} / argmax {:?}, softmax rows sum to {:.4}, logsumexp(1,2) {:?}",
        vals.dims(),
        idx.dims(),
        s.mean()?.item()?,
        lse.dims()
    ));
    shapes.push(vals.dims().to_vec());
    shapes.push(lse.dims().to_vec());

    // Data: a TensorDataset and DataLoaders; the last 20 % held out.
    let (points, labels) = spirals(200, dev)?;
    let order: Vec<u32> = wgnn::data::epoch_permutation(points.dims()[0], 7, 0);
    let cut = order.len() * 4 / 5;
    let train = TensorDataset::new(vec![points.clone(), labels.clone()])?;
    let train_idx = &order[..cut];
    let val = train.get(&order[cut..])?;
    let train = TensorDataset::new(train.get(train_idx)?)?;
    let mut loader = DataLoader::new(&train, 32)?.shuffle(1);
    say(format!(
        "{train:?}: {} batches of 32 per epoch, {} held out",
        loader.len(),
        val[0].dims()[0]
    ));

    // The model, the optimizer, the loop.
    let mut model = Mlp::new(2, 64, 3, dev)?;
    let mut opt = Optimizer::adam(0.01, 0.9, 0.999);
    let (mut first_loss, mut last_loss) = (f32::NAN, f32::NAN);
    for epoch in 0..epochs {
        model.train();
        let mut total = Tensor::zeros([0usize; 0], DType::F32, dev)?;
        let mut batches = 0;
        for batch in loader.epoch() {
            let batch = batch?;
            let (xb, yb) = (&batch[0], &batch[1]);
            model.zero_grad(); // optimizer.zero_grad()
            let loss = cross_entropy(&model.forward(xb)?, yb)?;
            loss.backward()?; // loss.backward()
            opt.step(model.named_parameters())?; // optimizer.step()
            total = (total + loss.detach())?; // stays on the device: no sync per step
            batches += 1;
        }
        let mean = total.item()? / batches as f32;
        if epoch == 0 {
            first_loss = mean;
        }
        last_loss = mean;
        if epoch % 10 == 0 || epoch + 1 == epochs {
            say(format!("epoch {epoch:3}  loss {mean:.4}"));
        }
    }

    // Held-out accuracy: argmax over the classes, compared with the labels.
    model.eval();
    let _guard = no_grad();
    let logits = model.forward(&val[0])?;
    let pred = logits.argmax(1, false)?.to_vec::<u32>()?;
    let want = val[1].to_vec::<u32>()?;
    let correct = pred.iter().zip(&want).filter(|(a, b)| a == b).count();
    let val_accuracy = correct as f32 / want.len() as f32;
    say(format!(
        "held-out accuracy {:.1} % ({correct} / {})",
        100.0 * val_accuracy,
        want.len()
    ));

    // state_dict saved, loaded into a fresh model (other initial weights), same outputs.
    let path = std::env::temp_dir().join(format!("wgnn-tour-{}.safetensors", std::process::id()));
    model.save_state_dict(&path)?; // torch.save(model.state_dict(), path)
    let mut fresh = Mlp::new(2, 64, 3, dev)?;
    let report = fresh.load_state_dict_file(&path, true)?; // fresh.load_state_dict(torch.load(path))
    let _ = std::fs::remove_file(&path);
    fresh.eval();
    let again = fresh.forward(&val[0])?;
    let reload_max_diff = logits.sub(&again)?.abs()?.max()?.item()?;
    say(format!(
        "state dict: {} tensors, exact load: {}, max |difference| after reload {reload_max_diff}",
        model.state_dict().len(),
        report.is_exact()
    ));
    Ok(TourResult {
        first_loss,
        last_loss,
        val_accuracy,
        reload_max_diff,
        shapes,
    })
}

#[allow(dead_code)] // tests/pytorch_tour.rs includes this file for `tour`
fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let mut device = String::from("auto");
    let mut epochs = 60;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--device" => device = args.next().unwrap_or_default(),
            "--epochs" => {
                epochs = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| Error::invalid("--epochs", "needs a number"))?
            }
            other => {
                return Err(Error::invalid(
                    "pytorch_tour",
                    format!("unknown argument {other:?} (--device auto|cpu|gpu|gpu:N, --epochs N)"),
                ));
            }
        }
    }
    let dev = Device::from_spec(&device)?;
    println!("pytorch_tour on {dev}");
    tour(&dev, epochs, true)?;
    Ok(())
}
