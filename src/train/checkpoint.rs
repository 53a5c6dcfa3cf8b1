//! Checkpoints in safetensors for any [`Module`]: tensor names are the module's dotted
//! parameter names (`conv1.weight`, `layer1.0.bn1.gamma` …), buffers (`bn1.running_mean`)
//! and optimizer state (`optim.conv1.weight.m` …); the header metadata records the
//! optimizer, its step count, the module's counters (`counter.drop1.step`, which seed the
//! dropout masks), the epoch and the id of the run that wrote it. Files are written to a
//! temporary name, flushed to the disk and renamed, so a crash never leaves a half-written
//! checkpoint; each tensor's CRC-32C is in the metadata and checked on load.
//!
//! A run writes into a checkpoint directory only when the checkpoints there are its own
//! ([`check_dir`]): a new run beside an old run's `epoch-N` files is refused rather than
//! mixed in. Loading refuses parameters, buffers and optimizer state that are not finite
//! (a diverged run) unless [`LoadOptions::allow_non_finite`] asks for them.
//!
//! The safetensors reading and writing here (`write_safetensors`, `read_safetensors`) is
//! also what [`ModuleExt::save_state_dict`] and [`ModuleExt::load_state_dict_file`] use for
//! plain state dicts (weights without an optimizer).

use crate::device::Device;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::nn::{Module, ModuleExt};
use crate::optim::Optimizer;
use crate::tensor::Tensor;
use crate::tensorboard::crc32c;
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

const FORMAT: &str = "wgnn-checkpoint-2";

/// What a checkpoint says about the run it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointInfo {
    /// Epochs completed.
    pub epoch: usize,
    /// The optimizer's update counter.
    pub optim_steps: u64,
    /// The id of the run that wrote it (`None` in checkpoints written before run ids).
    pub run_id: Option<String>,
}

/// How [`load_with`] treats what it reads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// Load NaN and infinite values too (to inspect a diverged run) instead of refusing them
    /// by name.
    pub allow_non_finite: bool,
}

/// Metadata key of the id of the run that wrote a checkpoint.
const RUN_ID: &str = "run_id";

/// A fresh run id: 16 hex digits mixed from the clock and the process id.
pub fn new_run_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    // splitmix64's finaliser, so that runs started close together differ in every digit.
    let mut z = nanos ^ (u64::from(std::process::id()) << 32);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    format!("{:016x}", z ^ (z >> 31))
}

/// A safetensors header's metadata (string → string).
pub(crate) type Metadata = HashMap<String, String>;

/// A tensor's elements as little-endian bytes, with the safetensors dtype that names them.
fn bytes_of(t: &Tensor) -> Result<(Dtype, Vec<u8>)> {
    Ok(match t.dtype() {
        DType::F32 => (
            Dtype::F32,
            bytemuck::cast_slice(&t.to_vec::<f32>()?).to_vec(),
        ),
        DType::F16 => (
            Dtype::F16,
            bytemuck::cast_slice(&t.to_vec::<half::f16>()?).to_vec(),
        ),
        DType::U32 => (
            Dtype::U32,
            bytemuck::cast_slice(&t.to_vec::<u32>()?).to_vec(),
        ),
    })
}

/// Writes `tensors` (each in its own dtype) and the header metadata `meta` to `path` as a
/// safetensors file: to a temporary name first, then renamed, so a crash never leaves a
/// half-written file. Names must be unique.
pub(crate) fn write_safetensors(
    path: &Path,
    tensors: &[(String, Tensor)],
    meta: HashMap<String, String>,
) -> Result<()> {
    let fail = |msg: String| Error::Checkpoint {
        path: path.display().to_string(),
        msg,
    };
    let mut data = Vec::with_capacity(tensors.len());
    for (name, t) in tensors {
        data.push((name.as_str(), t.dims().to_vec(), bytes_of(t)?));
    }
    let mut views = Vec::with_capacity(data.len());
    for (name, shape, (dtype, bytes)) in &data {
        let view = TensorView::new(*dtype, shape.clone(), bytes)
            .map_err(|e| fail(format!("{name}: {e}")))?;
        views.push((*name, view));
    }
    let mut meta = meta;
    for (name, _, (_, bytes)) in &data {
        meta.insert(
            format!("{CHECKSUM}{name}"),
            format!("{:08x}", crc32c(bytes)),
        );
    }
    let bytes = safetensors::serialize(views, Some(meta)).map_err(|e| fail(e.to_string()))?;
    remove_stale_temps(path);
    let tmp = temp_name(path);
    write_synced(&tmp, &bytes).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))?;
    sync_dir(path).map_err(|e| Error::io(path, e))?;
    Ok(())
}

/// Metadata key prefix of a tensor's CRC-32C (of its bytes as stored), checked on load.
const CHECKSUM: &str = "crc32c.";

/// Writes `bytes` to `path` and flushes them to the disk before returning (so that the
/// rename that follows never publishes a file whose data is still in flight).
fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = std::fs::File::create(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// Flushes the directory entry of `path` (the rename) to the disk, where the platform can.
fn sync_dir(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::File::open(dir)?.sync_all()?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Removes `path`'s temporary files left by writers that died between the write and the
/// rename (`NAME.tmpPID` whose process no longer runs; on systems without `/proc`, those
/// older than an hour).
fn remove_stale_temps(path: &Path) {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return;
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let prefix = format!("{}.tmp", name.to_string_lossy());
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let proc = Path::new("/proc");
    for entry in entries.flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = file
            .strip_prefix(&prefix)
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let dead = if proc.is_dir() {
            pid != std::process::id() && !proc.join(pid.to_string()).exists()
        } else {
            entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age.as_secs() > 3600)
        };
        if dead {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Reads a safetensors file: its header metadata (empty when it has none) and its tensors,
/// on the CPU, in the order of their data in the file (safetensors writes by dtype, then
/// name). F32, F16 and U32 tensors are read; any other dtype is an error naming the tensor.
pub(crate) fn read_safetensors(path: &Path) -> Result<(Metadata, Vec<(String, Tensor)>)> {
    let fail = |msg: String| Error::Checkpoint {
        path: path.display().to_string(),
        msg,
    };
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let (_, header) = SafeTensors::read_metadata(&bytes)
        .map_err(|e| fail(format!("not a safetensors file: {e}")))?;
    let meta = header.metadata().clone().unwrap_or_default();
    let st = SafeTensors::deserialize(&bytes).map_err(|e| fail(e.to_string()))?;
    let mut views: Vec<_> = st.iter().collect();
    views.sort_by_key(|(_, v)| v.data().as_ptr() as usize);
    let mut tensors = Vec::with_capacity(views.len());
    for (name, view) in views {
        // Files written before checksums (or by other tools) carry none: nothing to check.
        if let Some(want) = meta.get(&format!("{CHECKSUM}{name}"))
            && *want != format!("{:08x}", crc32c(view.data()))
        {
            return Err(fail(format!(
                "{name}: its bytes do not match their checksum (the file is damaged)"
            )));
        }
        let shape = view.shape().to_vec();
        let cpu = Device::Cpu;
        let t = match view.dtype() {
            Dtype::F32 => Tensor::from_vec(
                bytemuck::pod_collect_to_vec::<u8, f32>(view.data()),
                shape,
                &cpu,
            )?,
            Dtype::F16 => Tensor::from_vec(
                bytemuck::pod_collect_to_vec::<u8, half::f16>(view.data()),
                shape,
                &cpu,
            )?,
            Dtype::U32 => Tensor::from_vec(
                bytemuck::pod_collect_to_vec::<u8, u32>(view.data()),
                shape,
                &cpu,
            )?,
            other => {
                return Err(fail(format!(
                    "{name}: dtype {other:?}; wgnn reads F32, F16 and U32 tensors"
                )));
            }
        };
        tensors.push((name.to_string(), t));
    }
    Ok((meta, tensors))
}

/// Writes model parameters, buffers and optimizer state to `path` atomically, as a run of
/// its own (a fresh run id).
pub fn save(path: &Path, model: &mut dyn Module, opt: &Optimizer, epoch: usize) -> Result<()> {
    save_in_run(path, model, opt, epoch, &new_run_id())
}

/// [`save`] for the run `run_id` (a training loop's own: [`new_run_id`] at its start, or the
/// resumed checkpoint's [`CheckpointInfo::run_id`]), so that [`check_dir`] can tell its
/// checkpoints from another run's.
pub fn save_in_run(
    path: &Path,
    model: &mut dyn Module,
    opt: &Optimizer,
    epoch: usize,
    run_id: &str,
) -> Result<()> {
    let mut data: BTreeMap<String, Tensor> = BTreeMap::new();
    for (name, p) in model.named_parameters() {
        data.insert(name, p.value().detach());
    }
    for (name, t) in model.named_buffers() {
        data.insert(name, t.clone());
    }
    for (name, t) in opt.state() {
        data.insert(format!("optim.{name}"), t.clone());
    }
    // f32 in the file whatever the model's dtype, as before state dicts shared this code.
    let mut tensors = Vec::with_capacity(data.len());
    for (name, t) in data {
        let t = t.to_dtype(DType::F32)?;
        tensors.push((name, t));
    }
    let mut meta = HashMap::from([
        ("format".to_string(), FORMAT.to_string()),
        ("optimizer".to_string(), format!("{:?}", opt.kind())),
        ("optim_steps".to_string(), opt.steps().to_string()),
        ("epoch".to_string(), epoch.to_string()),
        (RUN_ID.to_string(), run_id.to_string()),
    ]);
    for (name, c) in model.named_counters() {
        meta.insert(format!("counter.{name}"), c.to_string());
    }
    write_safetensors(path, &tensors, meta)
}

fn temp_name(path: &Path) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(format!(".tmp{}", std::process::id()));
    path.with_file_name(name)
}

/// Loads a checkpoint into `model` and `opt`. Every parameter, buffer and optimizer state of
/// the model must be present with the same shape, and nothing else: a mismatch is an error
/// that names the tensors, and leaves the model untouched. So is a damaged tensor (its
/// checksum) and a value that is NaN or infinite (see [`load_with`] to load those anyway).
pub fn load(path: &Path, model: &mut dyn Module, opt: &mut Optimizer) -> Result<CheckpointInfo> {
    load_with(path, model, opt, LoadOptions::default())
}

/// [`load`] with options: `allow_non_finite` loads a diverged run's NaN and infinite values
/// for inspection instead of refusing them.
pub fn load_with(
    path: &Path,
    model: &mut dyn Module,
    opt: &mut Optimizer,
    options: LoadOptions,
) -> Result<CheckpointInfo> {
    let what = path.display().to_string();
    let fail = |msg: String| Error::Checkpoint {
        path: what.clone(),
        msg,
    };
    let (meta, tensors) = read_safetensors(path)?;
    let info = read_header(&meta, &fail)?;
    let saved = f32_tensors(tensors, &fail)?;
    // Check everything before changing anything: the architecture first (a LeNet checkpoint
    // resumed into DeepConvNet is a model mismatch, whatever optimizer trained it), then the
    // optimizer.
    let plan = plan_restore(model, &meta, &saved).map_err(|problems| fail(misfit(problems)))?;
    check_optimizer(&meta, opt, &fail)?;
    if !options.allow_non_finite {
        check_finite(&saved, &fail)?;
    }
    let device = model.device();
    let mut optim_tensors = BTreeMap::new();
    for (key, (shape, values)) in plan.optim_state {
        optim_tensors.insert(key, Tensor::from_slice(values, shape, &device)?);
    }
    let names: Vec<String> = model
        .named_parameters()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    opt.load_state(&names, optim_tensors, info.optim_steps, &what)?;
    for (name, p) in model.named_parameters() {
        let (shape, values) = &saved[&name];
        p.set_value(Tensor::from_slice(values, shape.clone(), &device)?)?;
    }
    for (name, t) in model.named_buffers() {
        let (shape, values) = &saved[&name];
        *t = Tensor::from_slice(values, shape.clone(), &device)?;
    }
    for ((_, c), v) in model.named_counters().into_iter().zip(plan.counters) {
        *c = v;
    }
    Ok(info)
}

/// A checkpoint's tensors by name: shape and f32 values.
type Saved = BTreeMap<String, (Vec<usize>, Vec<f32>)>;

/// What [`load`] restores once the checkpoint is known to fit: the model's counters in
/// `named_counters` order, and the optimizer state by its name without `optim.`.
struct RestorePlan<'s> {
    counters: Vec<u64>,
    optim_state: BTreeMap<String, (Vec<usize>, &'s Vec<f32>)>,
}

/// The optimizer kind `opt` must match the one that wrote the checkpoint.
fn check_optimizer(meta: &Metadata, opt: &Optimizer, fail: &dyn Fn(String) -> Error) -> Result<()> {
    let saved_opt = meta.get("optimizer").cloned().unwrap_or_default();
    if saved_opt != format!("{:?}", opt.kind()) {
        return Err(fail(format!(
            "saved with optimizer {saved_opt}, resuming with {:?}",
            opt.kind()
        )));
    }
    Ok(())
}

/// Checks the header metadata: the format, and the epoch and step counts, which it returns.
fn read_header(meta: &Metadata, fail: &dyn Fn(String) -> Error) -> Result<CheckpointInfo> {
    if meta.get("format").map(String::as_str) != Some(FORMAT) {
        return Err(fail(format!(
            "not a wgnn checkpoint (format {:?})",
            meta.get("format")
        )));
    }
    let num = |k: &str| -> Result<u64> {
        meta.get(k)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| fail(format!("metadata \"{k}\" missing or not a number")))
    };
    Ok(CheckpointInfo {
        epoch: num("epoch")? as usize,
        optim_steps: num("optim_steps")?,
        run_id: meta.get(RUN_ID).cloned(),
    })
}

/// Refuses NaN and infinite values, naming each tensor that has them and how many.
fn check_finite(saved: &Saved, fail: &dyn Fn(String) -> Error) -> Result<()> {
    let bad: Vec<String> = saved
        .iter()
        .filter_map(|(name, (_, values))| {
            let n = values.iter().filter(|v| !v.is_finite()).count();
            (n > 0).then(|| format!("\"{name}\" ({n} of {})", values.len()))
        })
        .collect();
    if bad.is_empty() {
        return Ok(());
    }
    Err(fail(format!(
        "NaN or infinite values (a diverged run?) in {}; load with allow_non_finite \
         (--allow-non-finite) to inspect them",
        bad.join(", ")
    )))
}

/// Whether `name` is a file a training run writes into its checkpoint directory
/// (`last.safetensors`, `best.safetensors`, `epoch-N.safetensors`).
fn is_run_checkpoint(name: &str) -> bool {
    let Some(stem) = name.strip_suffix(".safetensors") else {
        return false;
    };
    stem == "last"
        || stem == "best"
        || stem
            .strip_prefix("epoch-")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// The id of the run that wrote the checkpoint at `path` (`None` when it has none).
pub fn run_id_of(path: &Path) -> Result<Option<String>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let (_, header) = SafeTensors::read_metadata(&bytes).map_err(|e| Error::Checkpoint {
        path: path.display().to_string(),
        msg: format!("not a safetensors file: {e}"),
    })?;
    Ok(header
        .metadata()
        .as_ref()
        .and_then(|m| m.get(RUN_ID).cloned()))
}

/// Refuses a checkpoint directory that holds checkpoints (`last`, `best`, `epoch-N`) of a run
/// other than `run_id` (`None`: a new run, so any checkpoint there is another run's), so that
/// a run never mixes its files with another's or overwrites them. A directory that does not
/// exist yet, or holds other files only, is fine.
pub fn check_dir(dir: &Path, run_id: Option<&str>) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    let mut foreign = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !is_run_checkpoint(&name) {
            continue;
        }
        let theirs = run_id_of(&entry.path()).unwrap_or(None);
        if theirs.is_none() || theirs.as_deref() != run_id {
            foreign.push((name, theirs));
        }
    }
    if foreign.is_empty() {
        return Ok(());
    }
    foreign.sort();
    let shown: Vec<String> = foreign
        .iter()
        .take(6)
        .map(|(name, id)| match id {
            Some(id) => format!("{name} (run {id})"),
            None => format!("{name} (no run id)"),
        })
        .collect();
    let more = match foreign.len().saturating_sub(6) {
        0 => String::new(),
        n => format!(" and {n} more"),
    };
    Err(Error::Checkpoint {
        path: dir.display().to_string(),
        msg: format!(
            "holds checkpoints of another run: {}{more}; resume that run from its \
             last.safetensors (--resume), or use an empty directory",
            shown.join(", ")
        ),
    })
}

/// The checkpoint's tensors as f32 values (checkpoints are written in f32 whatever the
/// model's dtype, see [`save`]).
fn f32_tensors(tensors: Vec<(String, Tensor)>, fail: &dyn Fn(String) -> Error) -> Result<Saved> {
    let mut saved = Saved::new();
    for (name, t) in tensors {
        if t.dtype() != DType::F32 {
            return Err(fail(format!("{name}: dtype {}, expected f32", t.dtype())));
        }
        saved.insert(name, (t.dims().to_vec(), t.to_vec::<f32>()?));
    }
    Ok(saved)
}

/// Matches the checkpoint against the model: every counter in the metadata, every parameter
/// and buffer with its shape, and nothing but them and `optim.` state in the file. Returns
/// what to restore, or every mismatch found.
fn plan_restore<'s>(
    model: &mut dyn Module,
    meta: &Metadata,
    saved: &'s Saved,
) -> std::result::Result<RestorePlan<'s>, Vec<String>> {
    let mut expected: Vec<(String, Vec<usize>)> = model
        .named_parameters()
        .into_iter()
        .map(|(n, p)| (n, p.value().dims().to_vec()))
        .collect();
    expected.extend(
        model
            .named_buffers()
            .into_iter()
            .map(|(n, t)| (n, t.dims().to_vec())),
    );
    let mut problems = Vec::new();
    let mut counters = Vec::new();
    for (name, _) in model.named_counters() {
        match meta
            .get(&format!("counter.{name}"))
            .map(|v| v.parse::<u64>())
        {
            Some(Ok(v)) => counters.push(v),
            _ => problems.push(format!(
                "the model has counter \"{name}\" but the checkpoint does not"
            )),
        }
    }
    for (name, shape) in &expected {
        match saved.get(name) {
            None => problems.push(format!(
                "the model has \"{name}\" {shape:?} but the checkpoint does not"
            )),
            Some((s, _)) if s != shape => problems.push(format!(
                "\"{name}\" is {s:?} in the checkpoint but {shape:?} in the model"
            )),
            _ => {}
        }
    }
    let mut optim_state = BTreeMap::new();
    for (name, (shape, values)) in saved {
        if let Some(key) = name.strip_prefix("optim.") {
            optim_state.insert(key.to_string(), (shape.clone(), values));
        } else if !expected.iter().any(|(n, _)| n == name) {
            problems.push(format!(
                "the checkpoint has \"{name}\" {shape:?}, which the model does not"
            ));
        }
    }
    if problems.is_empty() {
        Ok(RestorePlan {
            counters,
            optim_state,
        })
    } else {
        Err(problems)
    }
}

/// The error message for a checkpoint that does not fit: the first six problems, and how
/// many more there are.
fn misfit(mut problems: Vec<String>) -> String {
    let n = problems.len();
    problems.truncate(6);
    let more = if n > 6 {
        format!("; and {} more", n - 6)
    } else {
        String::new()
    };
    format!(
        "does not fit the model (a different architecture?): {}{more}",
        problems.join("; ")
    )
}
