//! Shared test helpers: the list of devices every cross-check runs on, and tolerant compares.
#![allow(dead_code)]

use std::sync::OnceLock;
use wgnn::Device;

/// True when `WGNN_REQUIRE_GPU=1`: a missing adapter must fail the suite, not skip it.
pub fn gpu_required() -> bool {
    std::env::var("WGNN_REQUIRE_GPU").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
}

/// One opened device per adapter wgpu can see (opened once per test binary).
/// Panics (failing the test) when none is found and `WGNN_REQUIRE_GPU=1`; otherwise prints
/// that the GPU part is skipped and returns an empty list.
pub fn gpus() -> Vec<Device> {
    static GPUS: OnceLock<Vec<Device>> = OnceLock::new();
    GPUS.get_or_init(|| {
        let list = Device::list();
        let mut out = Vec::new();
        for s in &list {
            match Device::gpu_by_index(s.index) {
                Ok(d) => out.push(d),
                Err(e) => {
                    if gpu_required() {
                        panic!("WGNN_REQUIRE_GPU=1 but adapter gpu:{} could not be opened: {e}", s.index);
                    }
                    eprintln!("skipping adapter gpu:{} ({}): {e}", s.index, s.name);
                }
            }
        }
        if out.is_empty() {
            if gpu_required() {
                panic!(
                    "WGNN_REQUIRE_GPU=1 but no GPU adapter was found: {}",
                    wgnn::device::INSTALL_HINT
                );
            }
            eprintln!(
                "GPU tests SKIPPED: no adapter found (set WGNN_REQUIRE_GPU=1 to make this a failure)"
            );
        }
        out
    })
    .clone()
}

/// `|got - want| <= atol + rtol * |want|` elementwise, with a message naming the first
/// offending index.
pub fn assert_close(what: &str, got: &[f32], want: &[f32], atol: f32, rtol: f32) {
    assert_eq!(
        got.len(),
        want.len(),
        "{what}: length {} vs {}",
        got.len(),
        want.len()
    );
    let mut worst = 0.0f32;
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let err = (g - w).abs();
        let tol = atol + rtol * w.abs();
        assert!(
            err <= tol || (g.is_nan() && w.is_nan()),
            "{what}: element {i}: got {g}, want {w} (|diff| {err} > tol {tol})"
        );
        worst = worst.max(err);
    }
}

/// Max absolute difference.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// The CPU backend followed by every GPU adapter.
pub fn all_devices() -> Vec<Device> {
    let mut v = vec![Device::cpu()];
    v.extend(gpus());
    v
}

/// A freshly opened context per adapter, for tests that read counters and must not share
/// them with tests running in parallel.
pub fn fresh_gpus() -> Vec<Device> {
    let n = gpus().len();
    (0..n)
        .map(|i| {
            let index = match &gpus()[i] {
                Device::Gpu(ctx) => ctx.summary().index,
                Device::Cpu => unreachable!("gpus() holds GPU devices only"),
            };
            Device::gpu_by_index(index).expect("adapter opened before opens again")
        })
        .collect()
}
