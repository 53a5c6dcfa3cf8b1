//! The book's unit vectors (ch.4 simpleNet) reproduced on every device.
#![allow(clippy::excessive_precision)] // the book's digits, verbatim

mod common;

use wgnn::Tensor;
use wgnn::ops::Kernels;

const W: [f32; 6] = [
    0.47355232, 0.9977393, 0.84668094, 0.85557411, 0.03563661, 0.69422093,
];
const LOSS: f64 = 0.928_068_536_634_113_26;
const DW: [f32; 6] = [
    0.21924763,
    0.14356247,
    -0.36281009,
    0.32887144,
    0.2153437,
    -0.54421514,
];

#[test]
fn simple_net_loss_and_gradient() -> wgnn::Result<()> {
    for dev in common::all_devices() {
        let x = Tensor::from_slice(&[0.6f32, 0.9], [1, 2], &dev)?;
        let w = Tensor::from_slice(&W, [2, 3], &dev)?;
        let t = Tensor::from_slice(&[2u32], [1], &dev)?;
        let z = x.matmul_t(&w, false, false)?;
        let (loss, probs) = z.softmax_cross_entropy(&t)?;
        let dz = probs.softmax_cross_entropy_backward(&t, 1.0)?;
        let dw = x.matmul_t(&dz, true, false)?; // xᵀ · dz
        let loss = loss.item()? as f64;
        println!("book_vectors: {dev}: loss {loss:.9} (book {LOSS:.9})");
        // f32 arithmetic on values of order 1: 1e-6 is a few ulps of headroom.
        assert!(
            (loss - LOSS).abs() < 1e-6,
            "{dev}: loss {loss} vs the book's {LOSS}"
        );
        common::assert_close(
            &format!("simpleNet dW on {dev}"),
            &dw.to_vec::<f32>()?,
            &DW,
            1e-6,
            1e-5,
        );
    }
    Ok(())
}
