//! A GPU tensor stays on the GPU: a chain of ops is recorded into one command buffer, submits
//! nothing and reads nothing back until `to_vec()`, which submits once and reads exactly the
//! tensor's bytes.

mod common;

use wgnn::{DType, Device, Tensor};

/// 24 ops: matmul, bias add, activations, elementwise, softmax, transpose, reductions.
fn chain(x: &Tensor, w: &Tensor, b: &Tensor) -> wgnn::Result<Tensor> {
    let mut h = x.matmul(w, false, false)?; // 1
    h = h.add_broadcast(b)?; // 2
    let r = h.relu()?; // 3
    let s = h.sigmoid()?; // 4
    let mut y = r.mul(&s)?; // 5
    y = y.scale(0.5)?; // 6
    y.axpy_(0.25, &r)?; // 7
    let z = y.sub(&s)?; // 8
    let p = z.softmax()?; // 9
    let g = p.softmax_backward(&z)?; // 10
    let t = g.transpose_last2()?; // 11
    let tt = t.transpose_last2()?; // 12
    let q = tt.add(&p)?; // 13
    let d = q.relu_backward(&h)?; // 14
    let e = d.sigmoid_backward(&s)?; // 15
    let f = e.matmul(w, false, true)?; // 16
    let col = f.sum_rows()?; // 17
    let row = f.sum_cols()?; // 18
    let mut acc = Tensor::zeros(f.dims(), DType::F32, &x.device())?;
    acc.fill_(1.0)?; // 19
    acc.axpy_(2.0, &f)?; // 20
    let bc = acc.add_broadcast(&col)?; // 21
    let bc2 = bc.transpose_last2()?.add_broadcast(&row)?; // 22, 23
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
