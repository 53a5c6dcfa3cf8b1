//! Bad input is an error whose message says what went wrong and where — never a panic.

mod common;

use wgnn::ops::Kernels;
use wgnn::{DType, Device, Error, Tensor};

fn message<T: std::fmt::Debug>(r: wgnn::Result<T>) -> String {
    match r {
        Ok(v) => panic!("expected an error, got Ok({v:?})"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn shape_mismatch_names_op_and_shapes() -> wgnn::Result<()> {
    for dev in common::all_devices() {
        let a = Tensor::zeros([2, 3], DType::F32, &dev)?;
        let b = Tensor::zeros([4, 5], DType::F32, &dev)?;
        let m = message(a.matmul_t(&b, false, false));
        assert!(
            m.contains("matmul") && m.contains("[2, 3]") && m.contains("[4, 5]"),
            "{m}"
        );
        let m = message(a.add(&b));
        assert!(
            m.contains("add") && m.contains("[2, 3]") && m.contains("[4, 5]"),
            "{m}"
        );
        let bias = Tensor::zeros([4], DType::F32, &dev)?;
        let m = message(a.add(&bias));
        assert!(
            m.contains("add") && m.contains("[4]") && m.contains("broadcast"),
            "{m}"
        );
        let labels = Tensor::from_slice(&[0u32, 1, 2], [3], &dev)?;
        let m = message(a.softmax_cross_entropy(&labels));
        assert!(
            m.contains("softmax_cross_entropy") && m.contains("[3]"),
            "{m}"
        );
        let m = message(a.matmul(&b));
        assert!(m.contains("matmul") && m.contains("inner dims"), "{m}");
        let m = message(a.sum_dim(&[2], false));
        assert!(m.contains("sum") && m.contains("dim 2"), "{m}");
        let m = message(Tensor::from_slice(&[1.0f32; 5], [2, 3], &dev));
        assert!(
            m.contains("from_slice") && m.contains("6") && m.contains("5"),
            "{m}"
        );
        let m = message(a.try_clone()?.reshape([4, 2]));
        assert!(
            m.contains("reshape") && m.contains("[2, 3]") && m.contains("[4, 2]"),
            "{m}"
        );
    }
    Ok(())
}

#[test]
fn bad_geometry_and_dtypes() -> wgnn::Result<()> {
    for dev in common::all_devices() {
        let x = Tensor::zeros([1, 1, 4, 4], DType::F32, &dev)?;
        let m = message(x.im2col(7, 7, 1, 0));
        assert!(
            m.contains("im2col") && m.contains("larger than padded input"),
            "{m}"
        );
        let m = message(x.im2col(3, 3, 0, 0));
        assert!(m.contains("stride"), "{m}");
        let m = message(x.max_pool2d(2, 2, 2, 2));
        assert!(m.contains("max_pool2d") && m.contains("pad"), "{m}");
        let flat = Tensor::zeros([16], DType::F32, &dev)?;
        let m = message(flat.im2col(3, 3, 1, 1));
        assert!(m.contains("NCHW") && m.contains("[16]"), "{m}");
        let labels_f32 = Tensor::zeros([1], DType::F32, &dev)?;
        let logits = Tensor::zeros([1, 3], DType::F32, &dev)?;
        let m = message(logits.softmax_cross_entropy(&labels_f32));
        assert!(m.contains("expected dtype u32, got f32"), "{m}");
        let m = message(labels_f32.to_vec::<u32>());
        assert!(m.contains("to_vec") && m.contains("f32"), "{m}");
        let spec = wgnn::ops::DropoutSpec {
            ratio: 1.5,
            scale: 1.0,
            seed: 0,
            offset: 0,
        };
        let m = message(Tensor::dropout_mask([4], &spec, &dev));
        assert!(m.contains("dropout_mask") && m.contains("1.5"), "{m}");
    }
    // The CPU reference checks labels (a GPU kernel cannot without a readback: it gives NaN).
    let cpu = Device::cpu();
    let logits = Tensor::zeros([2, 3], DType::F32, &cpu)?;
    let labels = Tensor::from_slice(&[0u32, 7], [2], &cpu)?;
    let m = message(logits.softmax_cross_entropy(&labels));
    assert!(
        m.contains("label 7 at row 1") && m.contains("3 classes"),
        "{m}"
    );
    Ok(())
}

#[test]
fn oversize_buffer_is_an_error_not_a_panic() -> wgnn::Result<()> {
    for dev in common::gpus() {
        let Device::Gpu(ctx) = &dev else {
            unreachable!()
        };
        let limit = ctx.max_tensor_bytes();
        let too_many = (limit / 4 + 1) as usize;
        let r = Tensor::zeros([too_many], DType::F32, &dev);
        assert!(
            matches!(r, Err(Error::BufferTooLarge { .. })),
            "{dev}: {r:?}"
        );
        let m = message(r);
        assert!(
            m.contains("exceed") && m.contains(&limit.to_string()),
            "{m}"
        );
        // An op whose output would be too large fails the same way, before any GPU call.
        let side = ((limit / 4) as f64).sqrt() as usize + 1;
        let a = Tensor::zeros([side, 1], DType::F32, &dev)?;
        let b = Tensor::zeros([1, side], DType::F32, &dev)?;
        let m = message(a.matmul_t(&b, false, false));
        assert!(m.contains("matmul") && m.contains("exceed"), "{m}");
        // The device is still usable afterwards.
        let ok = Tensor::full([3], 2.0, &dev)?.to_vec::<f32>()?;
        assert_eq!(ok, vec![2.0; 3]);
    }
    Ok(())
}

#[test]
fn operands_on_different_devices() -> wgnn::Result<()> {
    for dev in common::gpus() {
        let a = Tensor::zeros([2, 2], DType::F32, &Device::cpu())?;
        let b = Tensor::zeros([2, 2], DType::F32, &dev)?;
        let m = message(a.add(&b));
        assert!(
            m.contains("different devices") && m.contains("to_device"),
            "{m}"
        );
    }
    Ok(())
}

#[test]
fn bad_device_specs() {
    let m = message(Device::from_spec("tpu"));
    assert!(
        m.contains("tpu") && m.contains("cpu, gpu, gpu:N, auto"),
        "{m}"
    );
    let m = message(Device::from_spec("gpu:x"));
    assert!(m.contains("gpu:N"), "{m}");
    let m = message(Device::from_spec("gpu:99"));
    assert!(m.contains("gpu:99"), "{m}");
}

/// With no adapter at all, `gpu()` is an error telling the user what to install and `auto()`
/// falls back to the CPU. Run in a child process whose wgpu may only use a backend that does
/// not exist on this platform, so the rest of the suite keeps its adapters.
#[test]
fn gpu_requested_with_none_present() {
    const CHILD: &str = "WGNN_TEST_NO_ADAPTER_CHILD";
    if std::env::var_os(CHILD).is_some() {
        assert!(
            Device::list().is_empty(),
            "the child should see no adapters"
        );
        let m = message(Device::gpu());
        assert!(
            m.contains("no GPU adapter") && m.contains("mesa-vulkan-drivers"),
            "{m}"
        );
        let m = message(Device::from_spec("gpu:0"));
        assert!(m.contains("no GPU adapter"), "{m}");
        let m = message(Device::from_spec("gpu:99"));
        assert!(
            m.contains("gpu:99")
                && m.contains("no GPU adapter")
                && m.contains("mesa-vulkan-drivers"),
            "{m}"
        );
        let auto = Device::auto().expect("auto() falls back to the CPU");
        assert!(!auto.is_gpu());
        return;
    }
    let nowhere = if cfg!(target_os = "macos") {
        "dx12"
    } else {
        "metal"
    };
    let out = std::process::Command::new(std::env::current_exe().expect("test binary path"))
        .args(["gpu_requested_with_none_present", "--exact", "--nocapture"])
        .env(CHILD, "1")
        .env("WGPU_BACKEND", nowhere)
        .env_remove("WGNN_DEVICE")
        .output()
        .expect("spawn the test binary");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "child failed:\n{text}");
    assert!(
        text.contains("1 passed"),
        "child did not run the check:\n{text}"
    );
    assert!(
        text.contains("using the CPU backend"),
        "auto() did not say it fell back:\n{text}"
    );
}

/// A label past the class count is refused where the dataset is built, naming the example and
/// the label, on every device (a GPU loss kernel would only give NaN).
#[test]
fn labels_outside_the_classes_are_refused() -> wgnn::Result<()> {
    use wgnn::data::DeviceDataset;
    let images = vec![0u8; 4 * 9];
    for dev in common::all_devices() {
        let ok = DeviceDataset::from_bytes(&images, &[0, 9, 3, 1], [1, 3, 3], 10, &dev)?;
        assert_eq!((ok.len(), ok.classes()), (4, 10));
        let m = message(DeviceDataset::from_bytes(
            &images,
            &[0, 9, 10, 1],
            [1, 3, 3],
            10,
            &dev,
        ));
        assert!(
            m.contains("label 10 at index 2") && m.contains("10 classes"),
            "{dev}: {m}"
        );
        let m = message(DeviceDataset::from_bytes(
            &images,
            &[0; 4],
            [1, 3, 3],
            0,
            &dev,
        ));
        assert!(m.contains("0 classes"), "{dev}: {m}");
    }
    Ok(())
}

/// Without an adapter, a GPU-only test says so outside the harness's capture, naming itself,
/// so `cargo test` never shows it as a silent pass of a GPU check; with `WGNN_REQUIRE_GPU=1`
/// it fails instead. Runs this binary's GPU-only `operands_on_different_devices` in a child
/// whose wgpu may only use a backend that does not exist on this platform.
#[test]
fn gpu_skips_are_reported_outside_the_capture() {
    let nowhere = if cfg!(target_os = "macos") {
        "dx12"
    } else {
        "metal"
    };
    let child = |require: &str| {
        let out = std::process::Command::new(std::env::current_exe().expect("test binary path"))
            .args(["operands_on_different_devices", "--exact"])
            .env("WGPU_BACKEND", nowhere)
            .env("WGNN_REQUIRE_GPU", require)
            .output()
            .expect("spawn the test binary");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    };
    let (ok, text) = child("0");
    assert!(ok, "child failed:\n{text}");
    assert!(
        text.contains("NO GPU ADAPTER") && text.contains("WGNN_REQUIRE_GPU=1"),
        "no banner:\n{text}"
    );
    assert!(
        text.contains("SKIPPED on the GPU: bad_input::operands_on_different_devices (its GPU checks did not run)"),
        "the skip does not name the test:\n{text}"
    );
    let (ok, text) = child("1");
    assert!(!ok, "WGNN_REQUIRE_GPU=1 without an adapter passed:\n{text}");
    assert!(text.contains("no GPU adapter was found"), "{text}");
}

/// Evaluation with batches of 0 is an error (it used to loop forever), as is an empty set.
#[test]
fn evaluation_with_no_batches_is_an_error() -> wgnn::Result<()> {
    use wgnn::data::DeviceDataset;
    use wgnn::nn::{Init, Linear};
    use wgnn::train::evaluate;
    let cpu = Device::cpu();
    let data = DeviceDataset::from_bytes(&[0u8; 2 * 4], &[1, 2], [1, 2, 2], 10, &cpu)?;
    let mut model = Linear::with_init(4, 10, Init::He, 0, &cpu)?;
    let m = message(evaluate(&mut model, &data, 0));
    assert!(m.contains("evaluate") && m.contains("batches of 0"), "{m}");
    assert!(evaluate(&mut model, &data, 1)? <= 1.0);
    Ok(())
}

/// Host allocations whose size comes from the user fail with an error naming the op, the
/// shape and the bytes — never an abort ("memory allocation of … failed") or a panic
/// ("capacity overflow").
#[test]
fn oversize_host_tensors_are_errors_not_aborts() -> wgnn::Result<()> {
    let cpu = Device::cpu();
    let m = message(Tensor::zeros([1usize << 40], DType::F32, &cpu));
    assert!(
        m.contains("zeros") && m.contains("[1099511627776]") && m.contains("4398046511104 bytes"),
        "{m}"
    );
    let m = message(Tensor::zeros([usize::MAX, 4], DType::F32, &cpu));
    assert!(m.contains("zeros") && m.contains("overflows"), "{m}");
    let m = message(Tensor::randn([1usize << 40], 0.0, 1.0, 1, &cpu));
    assert!(m.contains("randn") && m.contains("bytes"), "{m}");
    // An op whose output size comes from its arguments (vgg_like --resize 100000).
    let x = Tensor::zeros([1, 1, 4, 4], DType::F32, &cpu)?;
    let m = message(x.resize_bilinear(1 << 20, 1 << 20));
    assert!(m.contains("host memory") && m.contains("bytes"), "{m}");
    // The process is fine afterwards.
    assert_eq!(
        Tensor::zeros([3], DType::F32, &cpu)?.to_vec::<f32>()?,
        [0.0; 3]
    );
    Ok(())
}

/// Zero-sized layers and out-of-range hyperparameters are refused where they are given (a
/// layer's constructor; the optimizer's step, before anything changes), by name.
#[test]
fn zero_sized_layers_and_bad_hyperparameters_are_refused() -> wgnn::Result<()> {
    use wgnn::nn::{BatchNorm, Conv2d, Embedding, Linear, ModuleExt};
    use wgnn::optim::Optimizer;
    let cpu = Device::cpu();
    let refused = |r: Result<(), Error>| r.expect_err("refused").to_string();
    let m = refused(Linear::new(0, 10, &cpu).map(drop));
    assert!(m.contains("Linear") && m.contains("in_features"), "{m}");
    let m = refused(Conv2d::new(3, 8, 3, 0, 1, &cpu).map(drop));
    assert!(m.contains("Conv2d") && m.contains("stride"), "{m}");
    let m = refused(BatchNorm::channels(0, &cpu).map(drop));
    assert!(m.contains("BatchNorm") && m.contains("channels"), "{m}");
    let m = refused(Embedding::new(10, 0, &cpu).map(drop));
    assert!(
        m.contains("Embedding") && m.contains("embedding_dim"),
        "{m}"
    );
    let mut layer = Linear::new(4, 2, &cpu)?;
    let x = Tensor::randn([3, 4], 0.0, 1.0, 1, &cpu)?;
    wgnn::nn::Module::forward(&mut layer, &x)?
        .sum()?
        .backward()?;
    let before = layer
        .state_dict()
        .get("weight")
        .expect("weight")
        .to_vec::<f32>()?;
    for (opt, what) in [
        (Optimizer::sgd(f32::NAN), "learning rate"),
        (Optimizer::sgd(-1.0), "learning rate"),
        (Optimizer::momentum(0.1, 1.5), "momentum"),
        (Optimizer::adam(1e-3, 1.0, 0.999), "beta1"),
        (Optimizer::sgd(0.1).with_weight_decay(-0.5), "weight decay"),
        (
            Optimizer::adam(1e-3, 0.9, 0.999).with_torch_eps(-1e-8),
            "eps",
        ),
        (
            Optimizer::adam(1e-3, 0.9, 0.999).with_torch_eps(f32::NAN),
            "eps",
        ),
    ] {
        let mut opt = opt;
        let m = message(opt.step(layer.named_parameters()));
        assert!(m.contains(what) && m.contains("out of range"), "{m}");
    }
    let after = layer
        .state_dict()
        .get("weight")
        .expect("weight")
        .to_vec::<f32>()?;
    assert_eq!(before, after, "a refused step changed nothing");
    Ok(())
}

/// Output paths are checked before a run trains, with messages that say what is wrong.
#[test]
fn output_paths_are_checked_before_training() {
    use wgnn::cli::{check_output_dir, check_output_file};
    let root = std::env::temp_dir().join(format!("wgnn-outputs-{}", std::process::id()));
    std::fs::create_dir_all(&root).expect("temp dir");
    let file = root.join("a-file");
    std::fs::write(&file, b"x").expect("write");
    let e = check_output_dir("--plots", &file)
        .expect_err("a file")
        .to_string();
    assert!(
        e.contains("--plots") && e.contains("is a file, not a directory"),
        "{e}"
    );
    let e = check_output_file("--metrics-out", &root)
        .expect_err("a dir")
        .to_string();
    assert!(
        e.contains("--metrics-out") && e.contains("is a directory"),
        "{e}"
    );
    let e = check_output_file("--metrics-out", &root.join("missing/run.json"))
        .expect_err("no such directory")
        .to_string();
    assert!(e.contains("does not exist"), "{e}");
    check_output_dir("--checkpoint-dir", &root.join("new/ckpt")).expect("created");
    assert!(root.join("new/ckpt").is_dir());
    check_output_file("--metrics-out", &root.join("run.json")).expect("a fine path");
    std::fs::remove_dir_all(&root).expect("clean up");
}

/// Resuming another network's checkpoint names the architecture mismatch, even when the
/// optimizers differ too (the optimizer is checked second).
#[test]
fn resume_reports_the_architecture_before_the_optimizer() -> wgnn::Result<()> {
    use wgnn::optim::Optimizer;
    use wgnn::train::checkpoint;
    let cpu = Device::cpu();
    let path = std::env::temp_dir().join(format!("wgnn-lenet-{}.safetensors", std::process::id()));
    let mut lenet = wgnn::models::lenet(&cpu, 0)?;
    checkpoint::save(&path, &mut lenet, &Optimizer::sgd(0.1), 1)?;
    let mut deep = wgnn::models::deep_convnet(&cpu, 0)?;
    let e = checkpoint::load(&path, &mut deep, &mut Optimizer::adam(1e-3, 0.9, 0.999))
        .expect_err("another network")
        .to_string();
    let _ = std::fs::remove_file(&path);
    assert!(
        e.contains("in the checkpoint but") || e.contains("the model has"),
        "the architecture mismatch comes first: {e}"
    );
    assert!(!e.contains("optimizer"), "{e}");
    Ok(())
}

/// A checkpoint carries a CRC-32C of every tensor's bytes: a byte flipped anywhere in its
/// payload is an error naming the damaged tensor, never a silent load.
#[test]
fn a_flipped_payload_byte_is_detected_on_load() -> wgnn::Result<()> {
    use wgnn::optim::Optimizer;
    use wgnn::train::checkpoint;
    let cpu = Device::cpu();
    let dir = std::env::temp_dir().join(format!("wgnn-flip-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let path = dir.join("last.safetensors");
    // A small MLP after one Adam step (so the file holds optimizer moments too): ~200 KB.
    let mlp = |dev: &Device| -> wgnn::Result<wgnn::nn::Sequential> {
        wgnn::nn::Sequential::new()
            .add("fc1", wgnn::nn::Linear::new(64, 128, dev)?)?
            .add("fc2", wgnn::nn::Linear::new(128, 64, dev)?)
    };
    let mut model = mlp(&cpu)?;
    let mut opt = Optimizer::adam(1e-3, 0.9, 0.999);
    {
        use wgnn::nn::{Module, ModuleExt};
        let x = Tensor::randn([4, 64], 0.0, 1.0, 3, &cpu)?;
        model.forward(&x)?.sum()?.backward()?;
        opt.step(model.named_parameters())?;
    }
    checkpoint::save(&path, &mut model, &opt, 1)?;
    let good = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
    let header = u64::from_le_bytes(good[..8].try_into().expect("8 bytes")) as usize;
    let payload = 8 + header..good.len();
    let mut flips = 0;
    for at in payload.step_by(1000) {
        let mut bad = good.clone();
        bad[at] ^= 0x5a;
        std::fs::write(&path, &bad).map_err(|e| Error::io(&path, e))?;
        let e = checkpoint::load(&path, &mut mlp(&cpu)?, &mut opt_like())
            .expect_err("a damaged checkpoint must not load")
            .to_string();
        assert!(e.contains("checksum"), "byte {at}: {e}");
        flips += 1;
    }
    assert!(flips >= 100, "only {flips} bytes flipped");
    // The intact file still loads; a dead writer's temp file is gone after the next save.
    std::fs::write(&path, &good).map_err(|e| Error::io(&path, e))?;
    checkpoint::load(&path, &mut mlp(&cpu)?, &mut opt_like())?;
    let stale = dir.join("last.safetensors.tmp4294967");
    std::fs::write(&stale, b"half a checkpoint").map_err(|e| Error::io(&stale, e))?;
    checkpoint::save(&path, &mut model, &opt, 2)?;
    assert!(
        !stale.exists(),
        "the dead writer's temp file survived the save"
    );
    std::fs::remove_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    Ok(())
}

fn opt_like() -> wgnn::optim::Optimizer {
    wgnn::optim::Optimizer::adam(1e-3, 0.9, 0.999)
}

/// A checkpoint or state-dict file whose parameter is all NaN (a diverged run) is refused
/// with the parameter's name; the opt-outs load it for inspection.
#[test]
fn non_finite_checkpoints_are_refused_by_name() -> wgnn::Result<()> {
    use wgnn::nn::{ModuleExt, StateDict};
    use wgnn::train::checkpoint::{self, LoadOptions};
    let cpu = Device::cpu();
    let dir = std::env::temp_dir().join(format!("wgnn-nan-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let mlp = |dev: &Device| -> wgnn::Result<wgnn::nn::Sequential> {
        wgnn::nn::Sequential::new()
            .add("fc1", wgnn::nn::Linear::new(8, 16, dev)?)?
            .add("fc2", wgnn::nn::Linear::new(16, 4, dev)?)
    };
    let mut model = mlp(&cpu)?;
    let nan = Tensor::full([16, 4], f32::NAN, &cpu)?;
    model.get_parameter("fc2.weight")?.set_value(nan)?;
    let ckpt = dir.join("diverged.safetensors");
    checkpoint::save(&ckpt, &mut model, &opt_like(), 3)?;
    let e = message(checkpoint::load(&ckpt, &mut mlp(&cpu)?, &mut opt_like()));
    assert!(
        e.contains("\"fc2.weight\" (64 of 64)") && e.contains("NaN") && !e.contains("fc1"),
        "{e}"
    );
    let mut inspect = mlp(&cpu)?;
    let forensic = LoadOptions {
        allow_non_finite: true,
    };
    let info = checkpoint::load_with(&ckpt, &mut inspect, &mut opt_like(), forensic)?;
    assert_eq!(info.epoch, 3);
    let w = inspect
        .get_parameter("fc2.weight")?
        .value()
        .to_vec::<f32>()?;
    assert!(
        w.iter().all(|v| v.is_nan()),
        "the forensic load keeps the NaNs"
    );

    let dict_path = dir.join("weights.safetensors");
    model.save_state_dict(&dict_path)?;
    let e = message(mlp(&cpu)?.load_state_dict_file(&dict_path, true));
    assert!(e.contains("\"fc2.weight\" (64 of 64)"), "{e}");
    let dict = StateDict::load(&dict_path)?;
    mlp(&cpu)?.load_state_dict(&dict, true)?;
    std::fs::remove_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    Ok(())
}

/// A new run refuses a checkpoint directory that holds another run's checkpoints (instead of
/// leaving its `epoch-N` files beside its own); the run that wrote them resumes into it and
/// keeps its run id.
#[test]
fn a_checkpoint_dir_of_another_run_is_refused() -> wgnn::Result<()> {
    use wgnn::data::{DeviceDataset, Mnist};
    use wgnn::nn::cross_entropy;
    use wgnn::train::{TrainConfig, checkpoint, fit};
    let cpu = Device::cpu();
    let mnist = Mnist::load_default()?;
    let train = DeviceDataset::from_mnist(&mnist.train.take(200), &cpu)?;
    let test = DeviceDataset::from_mnist(&mnist.test.take(100), &cpu)?;
    let dir = std::env::temp_dir().join(format!("wgnn-runs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let net = |dev: &Device| -> wgnn::Result<wgnn::nn::Sequential> {
        let init = wgnn::nn::Init::He;
        wgnn::nn::Sequential::new().add("fc", wgnn::nn::Linear::with_init(784, 10, init, 1, dev)?)
    };
    let cfg = |epochs: usize| TrainConfig {
        epochs,
        checkpoint_dir: Some(dir.clone()),
        ..TrainConfig::default()
    };
    let first = fit(
        &mut net(&cpu)?,
        &cross_entropy,
        &mut opt_like(),
        &train,
        &test,
        &cfg(1),
    );
    first?;
    let id = checkpoint::run_id_of(&dir.join("epoch-1.safetensors"))?.expect("a run id");

    let e = message(fit(
        &mut net(&cpu)?,
        &cross_entropy,
        &mut opt_like(),
        &train,
        &test,
        &cfg(1),
    ));
    assert!(
        e.contains("another run") && e.contains("epoch-1.safetensors") && e.contains(&id),
        "{e}"
    );
    assert!(!dir.join("epoch-2.safetensors").exists());
    // Other files in the directory do not count.
    std::fs::write(dir.join("notes.txt"), b"x").map_err(|e| Error::io(&dir, e))?;
    let resumed = TrainConfig {
        resume: Some(dir.join("last.safetensors")),
        ..cfg(2)
    };
    fit(
        &mut net(&cpu)?,
        &cross_entropy,
        &mut opt_like(),
        &train,
        &test,
        &resumed,
    )?;
    let second = checkpoint::run_id_of(&dir.join("epoch-2.safetensors"))?;
    assert_eq!(
        second.as_deref(),
        Some(id.as_str()),
        "the resumed run keeps its id"
    );
    checkpoint::check_dir(&dir, Some(&id))?;
    let e = message(checkpoint::check_dir(&dir, None));
    assert!(
        e.contains("another run") && e.contains("last.safetensors"),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    Ok(())
}

/// `cross_entropy` with a label past the class count: an error on the CPU at once; on a GPU
/// the kernel flags it and the next readback (here the loss's) is the error, naming the first
/// bad row and the largest bad label; the device works on afterwards.
#[test]
fn gpu_cross_entropy_reports_out_of_range_labels() -> wgnn::Result<()> {
    use wgnn::nn::cross_entropy;
    for dev in common::all_devices() {
        let logits = Tensor::randn([4, 10], 0.0, 1.0, 5, &dev)?;
        let bad = Tensor::from_slice(&[0u32, 12, 3, 11], [4], &dev)?;
        let m = message(cross_entropy(&logits, &bad).and_then(|l| l.to_vec::<f32>()));
        assert!(m.contains("10 classes"), "{dev}: {m}");
        if dev.is_gpu() {
            assert!(
                m.contains("softmax_cross_entropy")
                    && m.contains("first at row 1")
                    && m.contains("largest 12"),
                "{dev}: {m}"
            );
        }
        let good = Tensor::from_slice(&[0u32, 9, 3, 1], [4], &dev)?;
        let loss = cross_entropy(&logits, &good)?.to_vec::<f32>()?;
        assert!(loss[0].is_finite(), "{dev}: {loss:?}");
    }
    Ok(())
}
