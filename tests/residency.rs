//! A GPU tensor stays on the GPU: a chain of ops is recorded into one command buffer, submits
//! nothing and reads nothing back until `to_vec()`, which submits once and reads exactly the
//! tensor's bytes.

mod common;

use wgnn::ops::Kernels;
use wgnn::{DType, Device, Tensor};

/// 24 ops: matmul, bias add, activations, elementwise, softmax, transpose, reductions.
fn chain(x: &Tensor, w: &Tensor, b: &Tensor) -> wgnn::Result<Tensor> {
    let mut h = x.matmul_t(w, false, false)?; // 1
    h = h.add(b)?; // 2
    let r = h.relu()?; // 3
    let s = h.sigmoid()?; // 4
    let mut y = r.mul(&s)?; // 5
    y = y.scale(0.5)?; // 6
    y.axpy_(0.25, &r)?; // 7
    let z = y.sub(&s)?; // 8
    let p = z.softmax(-1)?; // 9
    let g = p.softmax_backward(&z)?; // 10
    let t = g.transpose_last2()?; // 11
    let tt = t.transpose_last2()?; // 12
    let q = tt.add(&p)?; // 13
    let d = q.maximum(&h)?; // 14
    let e = d.div(&s)?; // 15
    let f = e.matmul_t(w, false, true)?; // 16
    let col = f.sum_dim(&[0], false)?; // 17
    let row = f.sum_dim(&[-1], false)?; // 18
    let mut acc = Tensor::zeros(f.dims(), DType::F32, &x.device())?;
    acc.fill_(1.0)?; // 19
    acc.axpy_(2.0, &f)?; // 20
    let bc = acc.add(&col)?; // 21
    let bc2 = bc.transpose_last2()?.add(&row)?; // 22, 23
    bc2.scale(0.1) // 24
}

fn inputs(dev: &Device) -> wgnn::Result<(Tensor, Tensor, Tensor)> {
    Ok((
        Tensor::randn([33, 20], 0.0, 1.0, 1, dev)?,
        Tensor::randn([20, 17], 0.0, 0.3, 2, dev)?,
        Tensor::randn([17], 0.0, 0.1, 3, dev)?,
    ))
}

#[test]
fn op_chain_is_one_submit_and_no_readback() -> wgnn::Result<()> {
    let (x, w, b) = inputs(&Device::cpu())?;
    let want = chain(&x, &w, &b)?.to_vec::<f32>()?;
    for dev in common::fresh_gpus() {
        let (x, w, b) = inputs(&dev)?;
        dev.sync()?; // the uploads are not part of the measured chain
        let before = dev.counters();
        let y = chain(&x, &w, &b)?;
        let mid = dev.counters().since(&before);
        assert!(
            mid.dispatches >= 20,
            "{dev}: only {} dispatches recorded",
            mid.dispatches
        );
        assert_eq!(mid.submits, 0, "{dev}: the chain submitted before to_vec()");
        assert_eq!(
            mid.bytes_read_back, 0,
            "{dev}: bytes read back before to_vec()"
        );
        assert_eq!(mid.bytes_uploaded, 0, "{dev}: the chain uploaded data");
        let got = y.to_vec::<f32>()?;
        let after = dev.counters().since(&before);
        assert_eq!(
            after.submits, 1,
            "{dev}: chain + to_vec() should be exactly one submit"
        );
        assert_eq!(
            after.bytes_read_back,
            (y.numel() * 4) as u64,
            "{dev}: to_vec() must read back exactly the tensor"
        );
        common::assert_close(&format!("chain on {dev}"), &got, &want, 1e-4, 1e-3);
        println!(
            "residency: {dev}: {} dispatches, 1 submit, {} bytes read back",
            mid.dispatches, after.bytes_read_back
        );
    }
    Ok(())
}

#[test]
fn explicit_flush_submits_once() -> wgnn::Result<()> {
    for dev in common::fresh_gpus() {
        let (x, w, b) = inputs(&dev)?;
        let before = dev.counters();
        let y = chain(&x, &w, &b)?;
        dev.flush()?;
        dev.flush()?; // nothing pending: no second submit
        let c = dev.counters().since(&before);
        assert_eq!(
            c.submits, 1,
            "{dev}: flush with pending work is one submit, an empty flush none"
        );
        assert_eq!(c.bytes_read_back, 0);
        drop(y);
    }
    Ok(())
}

/// `profile_kernels` times every dispatch (also past one submit's 1,024 query pairs), leaves
/// the results unchanged, and refuses what it cannot do by name.
#[test]
fn kernel_profile_times_every_dispatch() -> wgnn::Result<()> {
    for dev in common::fresh_gpus() {
        let ctx = dev.gpu_context().expect("a GPU device").clone();
        if !ctx.supports_timestamps() {
            let err = ctx.profile_kernels(|| Ok(())).unwrap_err().to_string();
            assert!(err.contains("TIMESTAMP_QUERY"), "{err}");
            eprintln!("{dev}: no TIMESTAMP_QUERY; only the refusal was checked");
            continue;
        }
        let a = Tensor::randn([192, 256], 0.0, 1.0, 1, &dev)?;
        let b = Tensor::randn([256, 128], 0.0, 1.0, 2, &dev)?;
        let want = a.matmul_t(&b, false, false)?.relu()?.to_vec::<f32>()?;
        let before = dev.counters();
        let (c, times) = ctx.profile_kernels(|| a.matmul_t(&b, false, false)?.relu())?;
        let dispatches = dev.counters().since(&before).dispatches;
        assert_eq!(
            times.len() as u64,
            dispatches,
            "{dev}: one time per dispatch"
        );
        assert!(
            times[0].kernel.starts_with("matmul.wgsl::matmul"),
            "{:?}",
            times[0]
        );
        assert!(times[0].constants.contains(&("MODE", 0)), "{:?}", times[0]);
        assert_eq!(
            times.last().map(|t| t.kernel.as_str()),
            Some("pointwise.wgsl::pointwise")
        );
        assert!(
            times
                .iter()
                .all(|t| t.seconds.is_finite() && t.seconds < 10.0),
            "{times:?}"
        );
        assert!(
            times[0].seconds > 0.0,
            "a 192x256x128 product took no time: {times:?}"
        );
        assert_eq!(
            c.to_vec::<f32>()?,
            want,
            "{dev}: profiling changed the result"
        );

        // More dispatches than one submit can time: the profile submits and goes on.
        let x = Tensor::randn([64], 0.0, 1.0, 3, &dev)?;
        let before = dev.counters();
        let (y, times) = ctx.profile_kernels(|| {
            let mut y = x.clone();
            for _ in 0..1100 {
                y = y.relu()?;
            }
            Ok(y)
        })?;
        let c = dev.counters().since(&before);
        assert_eq!(times.len(), 1100, "{dev}");
        assert!(
            c.submits >= 2,
            "{dev}: {} submits for 1,100 timed dispatches",
            c.submits
        );
        let relu: Vec<f32> = x.to_vec::<f32>()?.iter().map(|v| v.max(0.0)).collect();
        assert_eq!(y.to_vec::<f32>()?, relu);

        // A failing closure closes the profile; nesting is refused by name.
        let err = ctx
            .profile_kernels(|| -> wgnn::Result<()> { Err(wgnn::Error::invalid("test", "boom")) })
            .unwrap_err()
            .to_string();
        assert!(err.contains("boom"), "{err}");
        let (nested, _) = ctx.profile_kernels(|| Ok(ctx.profile_kernels(|| Ok(())).map(|_| ())))?;
        let err = nested.unwrap_err().to_string();
        assert!(err.contains("already open"), "{err}");
        let (_, times) = ctx.profile_kernels(|| x.relu())?;
        assert_eq!(
            times.len(),
            1,
            "{dev}: a profile opens again after an error"
        );
    }
    Ok(())
}
