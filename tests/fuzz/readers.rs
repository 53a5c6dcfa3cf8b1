//! The readers' cases: random, truncated and damaged bytes, and headers that lie, through the
//! IDX readers (raw and gzipped, and the whole MNIST loader), the state-dict readers and the
//! checkpoint loader, on the CPU.

use crate::generator::Rng;
use crate::{READER_CASES, Tally, Watchdog, base_seed, case_range, guarded};
use std::path::{Path, PathBuf};
use wgnn::nn::{BatchNorm, Linear, Module, ModuleExt, Sequential, StateDict};
use wgnn::optim::Optimizer;
use wgnn::train::checkpoint;
use wgnn::{Device, Tensor};

/// A fresh directory for one test's files, removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(what: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("wgnn-fuzz-{what}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create a temporary directory");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).expect("write a fuzz input");
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).expect("gzip into memory");
    enc.finish().expect("gzip into memory")
}

/// An IDX file: big-endian magic and dims, then `data`.
fn idx(magic: u32, dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut out = magic.to_be_bytes().to_vec();
    for d in dims {
        out.extend(d.to_be_bytes());
    }
    out.extend(data);
    out
}

/// A safetensors file by hand: the header JSON as given (it may lie), then `data`.
fn safetensors_raw(header: &str, data: &[u8]) -> Vec<u8> {
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend(header.as_bytes());
    out.extend(data);
    out
}

/// `good` damaged one of several ways, chosen by `r`; says which in `desc`.
fn damage(r: &mut Rng, good: &[u8], desc: &mut String) -> Vec<u8> {
    let mut b = good.to_vec();
    match r.below(6) {
        0 => {
            let n = r.below(96);
            desc.push_str(&format!("{n} random bytes"));
            (0..n).map(|_| r.next() as u8).collect()
        }
        1 => {
            let at = r.below(b.len() + 1);
            desc.push_str(&format!("truncated at {at}"));
            b.truncate(at);
            b
        }
        2 | 3 => {
            let flips = 1 + r.below(4);
            // Mostly in the first 128 bytes: the header, where a flip changes what is parsed.
            let span = if r.chance(0.7) {
                b.len().min(128)
            } else {
                b.len()
            };
            let at: Vec<usize> = (0..flips).map(|_| r.below(span.max(1))).collect();
            desc.push_str(&format!("bytes flipped at {at:?}"));
            for &i in &at {
                if let Some(x) = b.get_mut(i) {
                    *x ^= 1 << r.below(8);
                }
            }
            b
        }
        4 => {
            let n = 1 + r.below(16);
            desc.push_str(&format!("{n} bytes appended"));
            b.extend((0..n).map(|_| r.next() as u8));
            b
        }
        _ => {
            let at = r.below(b.len().max(1));
            let v = r.pick(&[0u8, 0xff, 0x7f, 0x80]);
            let n = 1 + r.below(8);
            desc.push_str(&format!("{n} bytes set to {v:#x} at {at}"));
            for x in b.iter_mut().skip(at).take(n) {
                *x = v;
            }
            b
        }
    }
}

/// The small model the safetensors readers load into (parameters and buffers).
fn small_model(dev: &Device) -> wgnn::Result<Sequential> {
    Sequential::new()
        .add("fc1", Linear::new(3, 4, dev)?)?
        .add("bn", BatchNorm::new(4, dev)?)?
        .add("fc2", Linear::new(4, 2, dev)?)
}

/// A header that claims sizes the data cannot hold (or that overflow).
fn lying_header(r: &mut Rng, metadata: &str) -> (String, Vec<u8>) {
    let dims: Vec<u64> = (0..r.below(4))
        .map(|_| match r.below(4) {
            0 => r.below(8) as u64,
            1 => 1 << 40,
            2 => u64::MAX,
            _ => (1 << 62) + 1,
        })
        .collect();
    let data_len = r.pick(&[0usize, 4, 8, 64]);
    let end: u64 = match r.below(4) {
        0 => data_len as u64,
        1 => u64::MAX,
        2 => 1 << 40,
        _ => r.below(80) as u64,
    };
    let begin = if r.chance(0.8) { 0 } else { r.next() };
    let dtype = r.pick(&["F32", "F16", "U32", "F64", "BOOL", "U8", "XX"]);
    let header = format!(
        "{{{metadata}\"fc1.weight\":{{\"dtype\":\"{dtype}\",\"shape\":{dims:?},\
         \"data_offsets\":[{begin},{end}]}}}}"
    );
    (header, vec![0x3f; data_len])
}

/// Runs the reader cases, every reader call under `catch_unwind`.
pub fn run_reader_cases() -> Tally {
    let cpu = Device::cpu();
    let tmp = TempDir::new("readers");
    let seed = base_seed();

    // Valid inputs to damage.
    let images = idx(0x803, &[3, 4, 5], &[7; 60]);
    let labels = idx(0x801, &[3], &[1, 2, 9]);
    let good_state = tmp.0.join("good-state.safetensors");
    let good_ckpt = tmp.0.join("good-ckpt.safetensors");
    {
        let mut model = small_model(&cpu).expect("build the small model");
        model
            .save_state_dict(&good_state)
            .expect("save a state dict");
        let mut opt = Optimizer::adam(1e-3, 0.9, 0.999);
        let x = Tensor::randn([5, 3], 0.0, 1.0, 1, &cpu).expect("inputs");
        model
            .forward(&x)
            .and_then(|y| y.sum())
            .and_then(|l| l.backward())
            .expect("a backward pass");
        opt.step(model.named_parameters()).expect("an Adam step");
        checkpoint::save(&good_ckpt, &mut model, &opt, 1).expect("save a checkpoint");
    }
    let state_bytes = std::fs::read(&good_state).expect("read the state dict back");
    let ckpt_bytes = std::fs::read(&good_ckpt).expect("read the checkpoint back");
    let ckpt_meta = "\"__metadata__\":{\"format\":\"wgnn-checkpoint-2\",\"epoch\":\"1\",\
                     \"optim_steps\":\"1\",\"optimizer\":\"Adam\"},";

    let mut tally = Tally::default();
    let watchdog = Watchdog::start();
    let path = tmp.0.join("input");
    let mnist_dir = tmp.0.join("mnist");
    std::fs::create_dir_all(&mnist_dir).expect("create the MNIST directory");
    for case in case_range(READER_CASES) {
        let mut r = Rng::new(seed ^ 0xf11e ^ case.wrapping_mul(0xd1b5_4a32_d192_ed03));
        let mut desc = String::new();
        let kind = r.below(5);
        let bytes = match kind {
            // IDX images or labels, raw or gzipped, damaged or with a lying header.
            0 | 1 => {
                let good = if kind == 0 { &images } else { &labels };
                let raw = if r.chance(0.3) {
                    let rank = if kind == 0 { 3 } else { 1 };
                    let dims: Vec<u32> = (0..rank)
                        .map(|_| r.pick(&[0, 1, 3, 60_000, 1 << 24, u32::MAX]))
                        .collect();
                    let magic = if r.chance(0.9) {
                        if kind == 0 { 0x803 } else { 0x801 }
                    } else {
                        r.next() as u32
                    };
                    desc.push_str(&format!("IDX header {magic:#x} {dims:?}, 60 data bytes"));
                    idx(magic, &dims, &[1; 60])
                } else {
                    desc.push_str("IDX ");
                    damage(&mut r, good, &mut desc)
                };
                if r.chance(0.3) {
                    desc.push_str(", gzipped");
                    let z = gzip(&raw);
                    if r.chance(0.5) {
                        desc.push_str(" then ");
                        damage(&mut r, &z, &mut desc)
                    } else {
                        z
                    }
                } else {
                    raw
                }
            }
            // Safetensors: a damaged state dict or checkpoint, or a lying header.
            _ => {
                if r.chance(0.3) {
                    let meta = if r.chance(0.5) { ckpt_meta } else { "" };
                    let (header, data) = lying_header(&mut r, meta);
                    desc.push_str(&format!("safetensors header {header}"));
                    let mut b = safetensors_raw(&header, &data);
                    if r.chance(0.2) {
                        let claim = r.pick(&[u64::MAX, 1 << 40, u64::MAX / 2, 0, 7]);
                        desc.push_str(&format!(", header length claimed {claim}"));
                        b[..8].copy_from_slice(&claim.to_le_bytes());
                    }
                    b
                } else {
                    let good = if kind == 2 { &state_bytes } else { &ckpt_bytes };
                    desc.push_str(if kind == 2 {
                        "state dict "
                    } else {
                        "checkpoint "
                    });
                    damage(&mut r, good, &mut desc)
                }
            }
        };
        write(&path, &bytes);
        let repro = format!("reader case {case} (WGNN_FUZZ_SEED={seed:#x} WGNN_FUZZ_CASE={case})");
        watchdog.case(repro.clone());
        let failed_before = tally.failures.len();
        let mut one = |what: &str, f: &mut dyn FnMut() -> wgnn::Result<()>| {
            tally.cases += 1;
            match guarded(f) {
                Ok(Ok(())) => tally.ok += 1,
                Ok(Err(_)) => tally.err += 1,
                Err(panic) => tally
                    .failures
                    .push(format!("{repro}: {what} of {desc}\n      {panic}")),
            }
        };
        if kind <= 1 {
            one("read_idx_images", &mut || {
                wgnn::data::read_idx_images(&path).map(drop)
            });
            one("read_idx_labels", &mut || {
                wgnn::data::read_idx_labels(&path).map(drop)
            });
            if case % 10 == 0 {
                // The whole loader: this file as one of the four, the others intact.
                use wgnn::data::mnist::{TEST_IMAGES, TEST_LABELS, TRAIN_IMAGES, TRAIN_LABELS};
                for name in [TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS] {
                    let _ = std::fs::remove_file(mnist_dir.join(format!("{name}.gz")));
                    let intact = if name.contains("images") {
                        &images
                    } else {
                        &labels
                    };
                    write(&mnist_dir.join(name), intact);
                }
                let victim = if kind == 0 { TRAIN_IMAGES } else { TEST_LABELS };
                write(&mnist_dir.join(victim), &bytes);
                one("Mnist::load", &mut || {
                    wgnn::data::Mnist::load(&mnist_dir).map(drop)
                });
            }
        } else {
            one("StateDict::load", &mut || StateDict::load(&path).map(drop));
            one("load_state_dict_file", &mut || {
                let strict = case % 2 == 0;
                small_model(&cpu)?
                    .load_state_dict_file(&path, strict)
                    .map(drop)
            });
            one("checkpoint::load", &mut || {
                let mut model = small_model(&cpu)?;
                let mut opt = Optimizer::adam(1e-3, 0.9, 0.999);
                checkpoint::load(&path, &mut model, &mut opt).map(drop)
            });
        }
        if tally.failures.len() > failed_before {
            // Kept, because the valid files' bytes (random weights, the header's unordered
            // metadata) differ from run to run, and so may the damaged ones.
            let keep = std::env::temp_dir().join(format!("wgnn-fuzz-reader-case-{case}.bin"));
            let _ = std::fs::write(&keep, &bytes);
            tally
                .failures
                .push(format!("    (its input is kept at {})", keep.display()));
        }
    }
    tally
}
