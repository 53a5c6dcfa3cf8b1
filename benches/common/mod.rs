//! What the criterion benches share: the devices to run on.

use wgnn::Device;

/// The CPU backend and, when there is one, the best GPU adapter (software ones included, so
/// lavapipe is benchmarked on GPU-less machines), each with a short label.
pub fn devices() -> Vec<(String, Device)> {
    let mut v = vec![("cpu".to_string(), Device::cpu())];
    match Device::gpu() {
        Ok(d) => {
            eprintln!("benchmarking GPU adapter: {d}");
            let label = match &d {
                Device::Gpu(ctx) => format!("gpu:{}", ctx.summary().index),
                Device::Cpu => "cpu".to_string(),
            };
            v.push((label, d));
        }
        Err(e) => eprintln!("no GPU adapter, CPU only: {e}"),
    }
    v
}
