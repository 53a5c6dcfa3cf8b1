//! Buffers are pooled: running the same op chain again and again allocates nothing new after
//! the first run, so live GPU memory stays flat (the anti-example: burn#4792, #5212).

mod common;

use wgnn::ops::Kernels;
use wgnn::{Device, Tensor};

fn step(x: &Tensor, w: &Tensor, labels: &Tensor) -> wgnn::Result<Tensor> {
    let col = x.im2col(3, 3, 1, 1)?; // [2*8*8, 2*9]
    let h = col.matmul_t(w, false, false)?.relu()?; // [128, 4]
    let (loss, probs) = h.softmax_cross_entropy(labels)?;
    let dh = probs.softmax_cross_entropy_backward(labels, 1.0)?;
    let dh = Tensor::where_(&h.relu()?, &dh, &h.mul_scalar(0.0)?)?; // ReLU's backward
    let dw = col.matmul_t(&dh, true, false)?;
    let dcol = dh.matmul_t(w, false, true)?;
    let dx = dcol.col2im(&x.conv_geom(3, 3, 1, 1)?)?;
    let (p, idx) = dx.max_pool2d(2, 2, 2, 0)?;
    let _ = p.max_pool2d_backward(&idx, &dx.pool_geom(2, 2, 2, 0)?)?;
    let _ = dw.sum_dim(&[0], false)?;
    Ok(loss)
}

#[test]
fn live_gpu_bytes_flat_over_100_runs() -> wgnn::Result<()> {
    for dev in common::fresh_gpus() {
        let x = Tensor::randn([2, 2, 8, 8], 0.0, 1.0, 1, &dev)?;
        let w = Tensor::randn([18, 4], 0.0, 0.5, 2, &dev)?;
        let labels =
            Tensor::from_slice(&(0..128u32).map(|i| i % 4).collect::<Vec<_>>(), [128], &dev)?;
        let _ = step(&x, &w, &labels)?;
        dev.sync()?;
        let first = dev.counters();
        for i in 0..100 {
            let loss = step(&x, &w, &labels)?;
            if i % 25 == 0 {
                assert!(loss.item()?.is_finite());
            }
        }
        dev.sync()?;
        let last = dev.counters();
        println!(
            "memory: {dev}: live {} bytes after run 1, {} after run 101; buffers created {} -> {}",
            first.live_buffer_bytes,
            last.live_buffer_bytes,
            first.buffers_created,
            last.buffers_created
        );
        assert_eq!(
            last.live_buffer_bytes, first.live_buffer_bytes,
            "{dev}: live GPU bytes grew"
        );
        assert_eq!(
            last.buffers_created, first.buffers_created,
            "{dev}: buffers were created after the first run"
        );
        assert_eq!(
            last.in_use_bytes, first.in_use_bytes,
            "{dev}: tensors leaked"
        );
    }
    Ok(())
}

#[test]
fn trim_releases_pooled_buffers() -> wgnn::Result<()> {
    for dev in common::fresh_gpus() {
        let Device::Gpu(ctx) = &dev else {
            unreachable!()
        };
        {
            let a = Tensor::randn([64, 64], 0.0, 1.0, 1, &dev)?;
            let _b = a.matmul_t(&a, false, false)?;
            dev.sync()?;
        }
        let before = dev.counters();
        assert!(before.live_buffer_bytes > 0 && before.in_use_bytes == 0);
        let freed = ctx.trim_pool();
        assert_eq!(freed, before.live_buffer_bytes);
        assert_eq!(dev.counters().live_buffer_bytes, 0);
    }
    Ok(())
}

/// The CPU backend recycles its buffers too: after the first step, a training step takes
/// every output from the pool and gives it back, so the pooled bytes stay flat.
#[test]
fn cpu_steps_reuse_pooled_buffers() -> wgnn::Result<()> {
    use wgnn::cpu::pool::pooled_bytes;
    let cpu = Device::cpu();
    let x = Tensor::randn([4, 2, 8, 8], 0.0, 1.0, 1, &cpu)?;
    let w = Tensor::randn([18, 4], 0.0, 0.5, 2, &cpu)?;
    let labels = Tensor::from_slice(&(0..256u32).map(|i| i % 4).collect::<Vec<_>>(), [256], &cpu)?;
    let _ = step(&x, &w, &labels)?;
    let after_first = pooled_bytes();
    for _ in 0..20 {
        let _ = step(&x, &w, &labels)?;
        assert_eq!(
            pooled_bytes(),
            after_first,
            "the CPU pool grew after the first step"
        );
    }
    assert!(after_first > 0);
    Ok(())
}
