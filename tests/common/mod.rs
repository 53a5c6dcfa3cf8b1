//! Shared test helpers: the list of devices every cross-check runs on, and tolerant compares.
#![allow(dead_code)]

pub mod grad;

use std::sync::OnceLock;
use wgnn::Device;

/// True when `WGNN_REQUIRE_GPU=1`: a missing adapter must fail the suite, not skip it.
pub fn gpu_required() -> bool {
    std::env::var("WGNN_REQUIRE_GPU").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
}

/// One opened device per adapter wgpu can see (opened once per test binary).
/// Panics (failing the test) when none is found and `WGNN_REQUIRE_GPU=1`; otherwise reports
/// the calling test as SKIPPED on the GPU (see [`report_gpu_skip`]) and returns an empty list.
/// For tests that check nothing without a GPU.
pub fn gpus() -> Vec<Device> {
    let out = opened_gpus();
    if out.is_empty() {
        report_gpu_skip("its GPU checks did not run");
    }
    out
}

/// The CPU backend followed by every GPU adapter; without an adapter the calling test is
/// reported as having run on the CPU only (see [`report_gpu_skip`]).
pub fn all_devices() -> Vec<Device> {
    let mut v = vec![Device::cpu()];
    let gpus = opened_gpus();
    if gpus.is_empty() {
        report_gpu_skip("ran on the CPU only");
    }
    v.extend(gpus);
    v
}

/// The CPU backend followed by every adapter with f16 kernels (`SHADER_F16`); reported like
/// [`all_devices`] when there is no adapter at all.
pub fn cpu_and_f16_gpus() -> Vec<Device> {
    all_devices()
        .into_iter()
        .filter(|d| d.gpu_context().is_none_or(|c| c.supports_f16()))
        .collect()
}

fn opened_gpus() -> Vec<Device> {
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
                    say(&format!("wgnn tests: adapter gpu:{} ({}) could not be opened, its checks are SKIPPED: {e}", s.index, s.name));
                }
            }
        }
        if out.is_empty() && gpu_required() {
            panic!(
                "WGNN_REQUIRE_GPU=1 but no GPU adapter was found: {}",
                wgnn::device::INSTALL_HINT
            );
        }
        out
    })
    .clone()
}

/// Writes a line to the process's stderr directly. The test harness captures `eprintln!`
/// (and shows it only for failing tests), but not writes to the stderr handle itself, so
/// this line reaches the user of `cargo test` whatever the test's outcome.
fn say(line: &str) {
    use std::io::Write;
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{line}");
}

/// Tells the user of `cargo test`, outside the harness's capture, that the running test's
/// GPU part was SKIPPED because no adapter exists, once per test, after one banner per test
/// binary saying why and how to make it a failure. The harness names each test's thread after
/// the test, so the line names the test that the harness will report as `ok`.
pub fn report_gpu_skip(what: &str) {
    static BANNER: std::sync::Once = std::sync::Once::new();
    static SEEN: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let test = std::thread::current()
        .name()
        .unwrap_or("an unnamed test")
        .to_string();
    let binary = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .map(|s| {
            s.rsplit_once('-')
                .map_or(s.clone(), |(name, _hash)| name.to_string())
        })
        .unwrap_or_default();
    BANNER.call_once(|| {
        say(&format!(
            "wgnn tests ({binary}): NO GPU ADAPTER: the GPU parts of this binary's tests are SKIPPED and \
             not checked (set WGNN_REQUIRE_GPU=1 to make this a failure; for a GPU: {})",
            wgnn::device::INSTALL_HINT
        ));
    });
    let mut seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
    if !seen.contains(&test) {
        say(&format!(
            "    SKIPPED on the GPU: {binary}::{test} ({what})"
        ));
        seen.push(test);
    }
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
