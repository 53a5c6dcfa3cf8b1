//! Modules: `#[derive(Module)]` naming (fields, `Vec`, `Option`, nesting, attributes), the
//! names of the shipped models (pinned against the hand-written listings they replaced),
//! state dicts (round trips, missing/unexpected/mis-shaped names) and `manual_seed`.

mod common;

use std::sync::{Mutex, MutexGuard};
use wgnn::models::{
    alexnet, deep_convnet, deep_convnet_bn, densenet, googlenet, lenet, nin, resnet18,
    simple_convnet, vgg11,
};
use wgnn::nn::{
    BatchNorm, Conv2d, Dropout, Init, Linear, Module, ModuleExt, ModuleField, Param, Relu,
    Sequential, StateDict,
};
use wgnn::{DType, Device, Result, Tensor};

/// The default generator is one per process and the tests of a binary run on parallel
/// threads: every test that builds a layer without an explicit seed holds this lock, so a
/// `manual_seed` test sees no other test's draws.
fn seed_lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn names<T>(v: Vec<(String, T)>) -> Vec<String> {
    v.into_iter().map(|(n, _)| n).collect()
}

fn values(t: &Tensor) -> Vec<f32> {
    t.to_dtype(DType::F32).unwrap().to_vec::<f32>().unwrap()
}

/// A configuration type of the user's own: a constant through an empty impl.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Pooling {
    Max,
}
impl ModuleField for Pooling {}

/// A type that is not a `ModuleField`, only allowed with `#[module(skip)]`.
struct Cache {
    hits: usize,
}

#[derive(Module)]
struct Head {
    fc: Linear,
    scale: f32,
    label: String,
}

impl Module for Head {
    fn forward(&mut self, x: &Tensor) -> Result<Tensor> {
        self.fc.forward(x)?.scale(self.scale)
    }
}

#[derive(Module)]
struct Net {
    layers: Vec<Linear>,
    head: Option<Head>,
    absent: Option<Linear>,
    boxed: Box<dyn Module>,
    pair: [Linear; 2],
    #[module(rename = "out")]
    last: Linear,
    #[module(buffer)]
    mask: Tensor,
    #[module(skip)]
    frozen: Linear,
    #[module(skip)]
    cache: Cache,
    #[module(counter)]
    calls: u64,
    drops: Vec<Dropout>,
    hidden: usize,
    rate: f64,
    on: bool,
    init: Init,
    pooling: Pooling,
    sizes: Vec<usize>,
}

impl Module for Net {
    fn forward(&mut self, x: &Tensor) -> Result<Tensor> {
        self.calls += 1;
        self.cache.hits += 1;
        let mut h = x.clone();
        for l in &mut self.layers {
            h = l.forward(&h)?.relu()?;
        }
        for d in &mut self.drops {
            h = d.forward(&h)?;
        }
        h = h.mul(&self.mask)?;
        let _ = self.frozen.weight();
        self.last.forward(&h)
    }
}

fn net(dev: &Device) -> Result<Net> {
    let lin = |i, o, seed| Linear::with_init(i, o, Init::He, seed, dev);
    Ok(Net {
        layers: vec![lin(4, 4, 1)?, lin(4, 4, 2)?],
        head: Some(Head {
            fc: lin(4, 2, 3)?,
            scale: 0.5,
            label: "head".into(),
        }),
        absent: None,
        boxed: Box::new(lin(4, 3, 4)?),
        pair: [lin(2, 2, 5)?, lin(2, 2, 6)?],
        last: lin(4, 3, 7)?,
        mask: Tensor::full([1, 4], 1.0, dev)?,
        frozen: lin(9, 9, 8)?,
        cache: Cache { hits: 0 },
        calls: 0,
        drops: vec![Dropout::with_seed(0.5, 9)?],
        hidden: 4,
        rate: 0.1,
        on: true,
        init: Init::He,
        pooling: Pooling::Max,
        sizes: vec![4, 4],
    })
}

#[test]
fn derive_names_fields_vec_option_box_array_rename_in_declaration_order() -> Result<()> {
    let mut m = net(&Device::cpu())?;
    assert_eq!(
        names(m.named_parameters()),
        [
            "layers.0.weight",
            "layers.0.bias",
            "layers.1.weight",
            "layers.1.bias",
            "head.fc.weight",
            "head.fc.bias",
            "boxed.weight",
            "boxed.bias",
            "pair.0.weight",
            "pair.0.bias",
            "pair.1.weight",
            "pair.1.bias",
            "out.weight",
            "out.bias",
        ]
    );
    assert_eq!(names(m.named_buffers()), ["mask"]);
    assert_eq!(names(m.named_counters()), ["calls", "drops.0.step"]);
    // The state dict: parameters and buffers in declaration order, nothing else.
    let keys: Vec<String> = m.state_dict().keys().map(String::from).collect();
    let mut want = names(m.named_parameters());
    want.insert(14, "mask".into());
    assert_eq!(keys, want);
    // Constants stay what they were, and nothing skipped is trained.
    assert_eq!(
        (m.hidden, m.rate, m.on, m.init, m.pooling, m.sizes.len()),
        (4, 0.1, true, Init::He, Pooling::Max, 2)
    );
    assert_eq!(m.head.as_ref().map(|h| h.label.as_str()), Some("head"));
    assert!(m.absent.is_none());
    // layers 2 × (16 + 4), head 8 + 2, boxed 12 + 3, pair 2 × (4 + 2), out 12 + 3.
    assert_eq!(m.num_params(), 40 + 10 + 15 + 12 + 15);
    // The counter counts, and the skipped field is the module's own business.
    let x = Tensor::full([1, 4], 1.0, &Device::cpu())?;
    m.eval();
    m.forward(&x)?;
    m.forward(&x)?;
    assert_eq!(m.calls, 2);
    assert_eq!(m.cache.hits, 2);
    assert_eq!(*m.named_counters()[0].1, 2);
    Ok(())
}

#[test]
fn derive_flatten_tuple_structs_generics_and_unit_structs() -> Result<()> {
    let dev = Device::cpu();
    #[derive(Module)]
    struct Blocks {
        #[module(flatten)]
        blocks: Vec<Linear>,
    }
    impl Module for Blocks {
        fn forward(&mut self, x: &Tensor) -> Result<Tensor> {
            Ok(x.clone())
        }
    }
    #[derive(Module)]
    struct Pair(Linear, Blocks);
    impl Module for Pair {
        fn forward(&mut self, x: &Tensor) -> Result<Tensor> {
            self.0.forward(x)
        }
    }
    #[derive(Module)]
    struct Wrap<M: Module> {
        inner: M,
        #[module(flatten)]
        extra: Option<M>,
    }
    impl<M: Module> Module for Wrap<M> {
        fn forward(&mut self, x: &Tensor) -> Result<Tensor> {
            self.inner.forward(x)
        }
    }
    #[derive(Module)]
    struct Experts {
        by_name: std::collections::BTreeMap<String, Linear>,
    }
    impl Module for Experts {
        fn forward(&mut self, x: &Tensor) -> Result<Tensor> {
            Ok(x.clone())
        }
    }
    #[derive(Module)]
    struct Nothing;
    impl Module for Nothing {
        fn forward(&mut self, x: &Tensor) -> Result<Tensor> {
            Ok(x.clone())
        }
    }
    let lin = |seed| Linear::with_init(2, 2, Init::He, seed, &dev);
    let mut pair = Pair(
        lin(1)?,
        Blocks {
            blocks: vec![lin(2)?, lin(3)?],
        },
    );
    assert_eq!(
        names(pair.named_parameters()),
        [
            "0.weight",
            "0.bias",
            "1.0.weight",
            "1.0.bias",
            "1.1.weight",
            "1.1.bias"
        ]
    );
    let mut wrap = Wrap {
        inner: lin(4)?,
        extra: Some(lin(5)?),
    };
    assert_eq!(
        names(wrap.named_parameters()),
        ["inner.weight", "inner.bias", "weight", "bias"]
    );
    assert!(Nothing.named_parameters().is_empty());
    let mut experts = Experts {
        by_name: [("dogs", lin(6)?), ("cats", lin(7)?)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    };
    assert_eq!(
        names(experts.named_parameters()),
        [
            "by_name.cats.weight",
            "by_name.cats.bias",
            "by_name.dogs.weight",
            "by_name.dogs.bias"
        ]
    );
    // A flattened child is still a module of the tree: eval reaches it.
    let mut seq = Wrap {
        inner: Dropout::with_seed(0.9, 2)?,
        extra: Some(Dropout::with_seed(0.9, 1)?),
    };
    seq.eval();
    let x = Tensor::full([1, 64], 1.0, &dev)?;
    let y = seq.extra.as_mut().map(|d| d.forward(&x)).transpose()?;
    assert_eq!(y.map(|y| values(&y)), Some(vec![1.0; 64]));
    Ok(())
}

/// Dropout inside a `Vec` of a derived module is reached by `eval()`: identity afterwards,
/// a mask before.
#[test]
fn train_and_eval_reach_children_in_vecs() -> Result<()> {
    let mut m = net(&Device::cpu())?;
    let x = Tensor::full([1, 4], 1.0, &Device::cpu())?;
    let drop = |m: &mut Net| m.drops[0].forward(&Tensor::full([1, 256], 1.0, &Device::cpu())?);
    m.train();
    let v = values(&drop(&mut m)?);
    assert!(v.contains(&0.0) && v.contains(&2.0), "a mask in training");
    m.eval();
    assert_eq!(values(&drop(&mut m)?), vec![1.0; 256]);
    m.forward(&x)?;
    Ok(())
}

/// The shipped models keep exactly the parameter, buffer and counter names (and shapes) that
/// their hand-written listings had: `tests/fixtures/module_names.txt` was written by the code
/// before `#[derive(Module)]`. Checkpoints depend on these names.
#[test]
fn model_names_are_pinned() -> Result<()> {
    let dev = Device::cpu();
    let mut got = String::new();
    let mut dump = |name: &str, m: &mut Sequential| {
        let p: Vec<String> = m
            .named_parameters()
            .into_iter()
            .map(|(n, p)| format!("{n}{:?}", p.value().dims()))
            .collect();
        let b: Vec<String> = m
            .named_buffers()
            .into_iter()
            .map(|(n, t)| format!("{n}{:?}", t.dims()))
            .collect();
        let c = names(m.named_counters());
        got.push_str(&format!(
            "== {name}\nP {}\nB {}\nC {}\n",
            p.join(" "),
            b.join(" "),
            c.join(" ")
        ));
    };
    dump("deep_convnet", &mut deep_convnet(&dev, 1)?);
    dump("deep_convnet_bn", &mut deep_convnet_bn(&dev, 1)?);
    dump("simple_convnet", &mut simple_convnet(&dev, 1)?);
    dump("lenet", &mut lenet(&dev, 1)?);
    dump("alexnet", &mut alexnet(&dev, 1, 65)?);
    dump("vgg11", &mut vgg11(&dev, 1, 32, 4)?);
    dump("nin", &mut nin(&dev, 1, 67)?);
    dump("resnet18", &mut resnet18(&dev, 1, 28)?);
    dump("googlenet", &mut googlenet(&dev, 1, 28)?);
    dump("densenet", &mut densenet(&dev, 1, 32)?);
    let want = include_str!("fixtures/module_names.txt");
    for (g, w) in got.lines().zip(want.lines()) {
        assert_eq!(g, w);
    }
    assert_eq!(got.lines().count(), want.lines().count());
    // Spot checks a reader can see here.
    assert!(want.contains("P b1.conv.weight[64, 1, 7, 7]"));
    assert!(want.contains(" b3.0.p2_2.weight[128, 96, 3, 3] "));
    assert!(want.contains(" b3.0.conv3.weight[128, 64, 1, 1] "));
    assert!(want.contains(" dense1.3.conv.weight[32, 160, 3, 3] "));
    Ok(())
}

/// The seeded models draw the same weights as before the derive (Σ|w| over every parameter,
/// in order, from the code before the change).
#[test]
fn model_weights_are_unchanged() -> Result<()> {
    let dev = Device::cpu();
    let abs_sum = |m: &mut Sequential| -> f64 {
        m.parameters()
            .iter()
            .flat_map(|p| values(p.value()))
            .map(|v| (v as f64).abs())
            .sum()
    };
    for (name, got, want) in [
        (
            "deep_convnet",
            abs_sum(&mut deep_convnet(&dev, 1)?),
            6.181987435e3,
        ),
        ("lenet", abs_sum(&mut lenet(&dev, 1)?), 3.679813003e3),
        (
            "resnet18",
            abs_sum(&mut resnet18(&dev, 1, 28)?),
            1.773590008e5,
        ),
        (
            "googlenet",
            abs_sum(&mut googlenet(&dev, 1, 28)?),
            1.754333631e5,
        ),
        (
            "densenet",
            abs_sum(&mut densenet(&dev, 1, 32)?),
            2.873127680e4,
        ),
    ] {
        assert!(
            ((got - want) / want).abs() < 1e-9,
            "{name}: Σ|w| = {got:.9e}, was {want:.9e}"
        );
    }
    Ok(())
}

/// A small net with every kind of state: conv, per-channel and per-feature BatchNorm (running
/// statistics), dropout, linear.
fn small(dev: &Device, seed: u64) -> Result<Sequential> {
    Sequential::new()
        .add(
            "conv",
            Conv2d::with_init(1, 4, 3, 1, 1, Init::He, seed, dev)?,
        )?
        .add("bn", BatchNorm::channels(4, dev)?)?
        .add("relu", Relu)?
        .add(
            "fc",
            Linear::with_init(4 * 5 * 5, 6, Init::He, seed + 1, dev)?,
        )?
        .add("bn1d", BatchNorm::new(6, dev)?)?
        .add("drop", Dropout::with_seed(0.5, seed)?)
}

/// state_dict → file → a fresh model with other weights: identical outputs, on every device
/// (the file written from the CPU model is loaded onto each device).
#[test]
fn state_dict_round_trip_through_a_file_gives_identical_outputs() -> Result<()> {
    let cpu = Device::cpu();
    let x = Tensor::randn([3, 1, 5, 5], 0.0, 1.0, 11, &cpu)?;
    let mut a = small(&cpu, 1)?;
    // Two training steps' worth of running statistics, so the buffers are not their init.
    a.train();
    a.forward(&x)?;
    a.forward(&x.scale(2.0)?)?;
    a.eval();
    let want = values(&a.forward(&x)?);
    let dict = a.state_dict();
    assert_eq!(
        dict.keys().collect::<Vec<_>>(),
        [
            "conv.weight",
            "conv.bias",
            "bn.gamma",
            "bn.beta",
            "bn.running_mean",
            "bn.running_var",
            "fc.weight",
            "fc.bias",
            "bn1d.gamma",
            "bn1d.beta",
            "bn1d.running_mean",
            "bn1d.running_var"
        ]
    );
    let rm = values(dict.get("bn.running_mean").expect("a buffer"));
    assert!(rm.iter().any(|v| *v != 0.0), "running mean updated: {rm:?}");
    let dir = std::env::temp_dir().join(format!("wgnn-modules-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| wgnn::Error::io(&dir, e))?;
    let path = dir.join("small.safetensors");
    a.save_state_dict(&path)?;
    for dev in common::all_devices() {
        let mut b = small(&dev, 99)?;
        b.eval();
        let before = values(&b.forward(&x.to_device(&dev)?)?);
        assert!(
            common::max_abs_diff(&before, &want) > 1e-3,
            "{dev}: another seed gives other outputs"
        );
        let report = b.load_state_dict_file(&path, true)?;
        assert!(report.is_exact(), "{dev}: {report:?}");
        assert_eq!(b.device().to_string(), dev.to_string());
        let got = values(&b.forward(&x.to_device(&dev)?)?);
        if dev.is_gpu() {
            common::assert_close(&format!("{dev} loaded"), &got, &want, 1e-5, 1e-4);
        } else {
            assert_eq!(got, want, "{dev}: bit-identical on the CPU");
        }
        // And in memory, without a file.
        let mut c = small(&dev, 7)?;
        c.eval();
        c.load_state_dict(&a.state_dict(), true)?;
        let got = values(&c.forward(&x.to_device(&dev)?)?);
        common::assert_close(&format!("{dev} in memory"), &got, &want, 1e-5, 1e-4);
    }
    // The file reads back as the same dict.
    let back = StateDict::load(&path)?;
    assert_eq!(back.len(), dict.len());
    for (name, t) in dict.iter() {
        assert_eq!(back.get(name).map(values), Some(values(t)), "{name}");
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

#[test]
fn load_state_dict_reports_missing_and_unexpected_names() -> Result<()> {
    let dev = Device::cpu();
    let mut src = small(&dev, 1)?;
    // Running statistics that are not their initial values.
    src.forward(&Tensor::randn([3, 1, 5, 5], 0.5, 1.0, 4, &dev)?)?;
    let mut dict = src.state_dict();
    assert!(dict.remove("fc.bias").is_some());
    dict.remove("bn.running_var");
    dict.insert("fc.extra", Tensor::full([6], 3.0, &dev)?);
    dict.insert("head.weight", Tensor::full([2, 2], 1.0, &dev)?);

    // Strict: an error naming every problem, and nothing changed.
    let mut dst = small(&dev, 50)?;
    let conv_before = values(dst.get_parameter("conv.weight")?.value());
    let e = dst
        .load_state_dict(&dict, true)
        .expect_err("strict load with missing names")
        .to_string();
    for name in ["fc.bias", "bn.running_var", "fc.extra", "head.weight"] {
        assert!(e.contains(&format!("\"{name}\"")), "{e}");
    }
    assert!(
        e.contains("missing") && e.contains("not in the module"),
        "{e}"
    );
    assert_eq!(
        values(dst.get_parameter("conv.weight")?.value()),
        conv_before
    );

    // Not strict: loaded where the names match, the rest listed.
    let fc_bias_before = values(dst.get_parameter("fc.bias")?.value());
    let report = dst.load_state_dict(&dict, false)?;
    assert_eq!(report.missing, ["bn.running_var", "fc.bias"]);
    assert_eq!(report.unexpected, ["fc.extra", "head.weight"]);
    assert_eq!(
        values(dst.get_parameter("conv.weight")?.value()),
        values(src.get_parameter("conv.weight")?.value())
    );
    assert_eq!(
        values(dst.get_parameter("fc.bias")?.value()),
        fc_bias_before
    );
    let src_mean = values(src.get_buffer("bn.running_mean")?);
    assert!(src_mean.iter().all(|v| *v != 0.0), "{src_mean:?}");
    assert_eq!(values(dst.get_buffer("bn.running_mean")?), src_mean);
    assert_ne!(values(src.get_buffer("bn.running_var")?), vec![1.0; 4]);
    assert_eq!(
        values(dst.get_buffer("bn.running_var")?),
        vec![1.0; 4],
        "missing: kept"
    );
    Ok(())
}

#[test]
fn load_state_dict_names_every_mismatched_shape_even_when_not_strict() -> Result<()> {
    let dev = Device::cpu();
    let mut wide = Sequential::new()
        .add("fc1", Linear::with_init(4, 8, Init::He, 1, &dev)?)?
        .add("fc2", Linear::with_init(8, 2, Init::He, 2, &dev)?)?;
    let mut narrow = Sequential::new()
        .add("fc1", Linear::with_init(4, 5, Init::He, 3, &dev)?)?
        .add("fc2", Linear::with_init(5, 2, Init::He, 4, &dev)?)?;
    let before = values(narrow.get_parameter("fc2.bias")?.value());
    for strict in [true, false] {
        let e = narrow
            .load_state_dict(&wide.state_dict(), strict)
            .expect_err("shapes differ")
            .to_string();
        assert!(e.contains("3 tensor(s) do not fit"), "{e}");
        for part in [
            "\"fc1.weight\": [4, 8] in the state dict, [4, 5] in the module",
            "\"fc1.bias\": [8] in the state dict, [5] in the module",
            "\"fc2.weight\": [8, 2] in the state dict, [5, 2] in the module",
        ] {
            assert!(e.contains(part), "{e}\nlacks {part}");
        }
        assert!(!e.contains("fc2.bias"), "fc2.bias fits: {e}");
    }
    // Nothing was loaded, not even the one that fits.
    assert_eq!(values(narrow.get_parameter("fc2.bias")?.value()), before);
    Ok(())
}

/// An f32 state dict loads into an f16 model in f16; the model keeps its dtype.
#[test]
fn load_state_dict_converts_to_the_module_dtype() -> Result<()> {
    let dev = Device::cpu();
    let mut a = Linear::with_init(3, 2, Init::He, 1, &dev)?;
    let mut b = Linear::with_init(3, 2, Init::He, 2, &dev)?;
    b.to_dtype(DType::F16)?;
    b.load_state_dict(&a.state_dict(), true)?;
    let w = b.get_parameter("weight")?.value().clone();
    assert_eq!(w.dtype(), DType::F16);
    let want: Vec<f32> = values(a.weight().value())
        .into_iter()
        .map(|v| half::f16::from_f32(v).to_f32())
        .collect();
    assert_eq!(values(&w), want);
    // And a u32 tensor for a float parameter is named as a dtype mismatch.
    let mut d = StateDict::new();
    d.insert("weight", Tensor::from_slice(&[1u32; 6], [3, 2], &dev)?);
    let e = a
        .load_state_dict(&d, false)
        .expect_err("u32 into f32")
        .to_string();
    assert!(
        e.contains("\"weight\": dtype u32 in the state dict, f32 in the module"),
        "{e}"
    );
    Ok(())
}

#[test]
fn parameters_and_lookup_by_dotted_name() -> Result<()> {
    let dev = Device::cpu();
    let mut m = net(&dev)?;
    let w = values(m.get_parameter("layers.1.weight")?.value());
    assert_eq!(w, values(m.layers[1].weight().value()));
    assert_eq!(
        values(m.get_parameter("out.bias")?.value()),
        values(m.last.bias().value())
    );
    assert_eq!(values(m.get_buffer("mask")?), vec![1.0; 4]);
    let e = m
        .get_parameter("layers.7.weight")
        .err()
        .map(|e| e.to_string());
    let e = e.expect("no such parameter");
    assert!(
        e.contains("no parameter \"layers.7.weight\"") && e.contains("\"layers.0.weight\""),
        "{e}"
    );
    let e = m.get_buffer("bn.running_mean").err().map(|e| e.to_string());
    assert!(e.is_some_and(|e| e.contains("\"mask\"")));
    let sizes: Vec<usize> = m
        .parameters()
        .iter()
        .map(|p: &&mut Param| p.numel())
        .collect();
    assert_eq!(sizes, [16, 4, 16, 4, 8, 2, 12, 3, 4, 2, 4, 2, 12, 3]);
    Ok(())
}

#[test]
fn manual_seed_makes_default_constructors_reproducible_and_layers_distinct() -> Result<()> {
    let _guard = seed_lock();
    let dev = Device::cpu();
    let build = || -> Result<Vec<Vec<f32>>> {
        let a = Linear::new(16, 8, &dev)?;
        let b = Linear::new(16, 8, &dev)?;
        let c = Conv2d::new(2, 3, 3, 1, 1, &dev)?;
        Ok(vec![
            values(a.weight().value()),
            values(a.bias().value()),
            values(b.weight().value()),
            values(c.weight().value()),
        ])
    };
    wgnn::manual_seed(1234);
    let first = build()?;
    wgnn::manual_seed(1234);
    let again = build()?;
    assert_eq!(first, again, "same seed, same layers");
    assert_ne!(first[0], first[2], "two layers built in a row differ");
    wgnn::manual_seed(1235);
    assert_ne!(build()?[0], first[0], "another seed, other weights");
    // PyTorch's default: weight and bias uniform in ±1/√fan_in, and spread over it.
    let bound = 1.0 / 16f32.sqrt();
    for v in [&first[0], &first[1]] {
        assert!(v.iter().all(|x| x.abs() <= bound), "{v:?}");
    }
    let w = &first[0];
    let (lo, hi) = w
        .iter()
        .fold((0f32, 0f32), |(l, h), &x| (l.min(x), h.max(x)));
    assert!(lo < -0.6 * bound && hi > 0.6 * bound, "spread [{lo}, {hi}]");
    let conv_bound = 1.0 / 18f32.sqrt();
    assert!(first[3].iter().all(|x| x.abs() <= conv_bound));
    // The explicit-seed constructors do not draw from the default generator.
    wgnn::manual_seed(1234);
    let _ = Linear::with_init(16, 8, Init::He, 5, &dev)?;
    assert_eq!(values(Linear::new(16, 8, &dev)?.weight().value()), first[0]);
    // Dropout::new takes its mask seed from the generator too.
    let mask = || -> Result<Vec<f32>> {
        let mut d = Dropout::new(0.5)?;
        Ok(values(&d.forward(&Tensor::full([1, 64], 1.0, &dev)?)?))
    };
    wgnn::manual_seed(3);
    let m1 = mask()?;
    let m2 = mask()?;
    wgnn::manual_seed(3);
    assert_eq!(mask()?, m1);
    assert_ne!(m1, m2);
    Ok(())
}

/// The fused conv/linear + ReLU of `Sequential` (now its own business, not the trait's)
/// still gives what the separate ops give, boxed layers included.
#[test]
fn sequential_fusion_matches_the_unfused_ops() -> Result<()> {
    let dev = Device::cpu();
    let x = Tensor::randn([2, 1, 5, 5], 0.0, 1.0, 3, &dev)?;
    let mut conv = Conv2d::with_init(1, 2, 3, 1, 1, Init::He, 1, &dev)?;
    let mut fc = Linear::with_init(50, 3, Init::He, 2, &dev)?;
    let want = fc.forward(&conv.forward(&x)?.relu()?)?.relu()?;
    let boxed: Box<dyn Module> = Box::new(Linear::with_init(50, 3, Init::He, 2, &dev)?);
    let mut seq = Sequential::new()
        .add("conv", Conv2d::with_init(1, 2, 3, 1, 1, Init::He, 1, &dev)?)?
        .add("relu1", Relu)?
        .add("fc", boxed)?
        .add("relu2", Relu)?;
    assert_eq!(values(&seq.forward(&x)?), values(&want));
    Ok(())
}
