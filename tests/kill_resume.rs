//! Kill -9 at random points of 30 training runs that write checkpoints every epoch: each run
//! resumes from its `last.safetensors`, and the resumed run's next save leaves no temporary
//! file behind (a kill between a checkpoint's write and its rename leaves `NAME.tmpPID`).
//!
//! The test runs this same binary as the training child (`WGNN_KILL_CHILD` names its
//! checkpoint directory), so it has its own `main` rather than the test harness.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use wgnn::data::DeviceDataset;
use wgnn::nn::{Init, Linear, Relu, Sequential, cross_entropy};
use wgnn::optim::Optimizer;
use wgnn::rng::SplitMix64;
use wgnn::train::{TrainConfig, checkpoint, fit};
use wgnn::{Device, Result};

const RUNS: usize = 30;
const CHILD: &str = "WGNN_KILL_CHILD";
const RESUME: &str = "WGNN_KILL_RESUME";
const EPOCHS: &str = "WGNN_KILL_EPOCHS";

fn main() {
    if let Ok(dir) = std::env::var(CHILD) {
        if let Err(e) = child(Path::new(&dir)) {
            eprintln!("kill_resume child: {e}");
            std::process::exit(1);
        }
        return;
    }
    match parent() {
        Ok(()) => println!("test kill_resume ... ok"),
        Err(e) => {
            eprintln!("test kill_resume ... FAILED: {e}");
            std::process::exit(1);
        }
    }
}

/// A 784-128-10 MLP (~100 K weights, so each checkpoint with Adam's moments is ~1.2 MB and a
/// good part of every epoch is spent writing it).
fn net(dev: &Device) -> Result<Sequential> {
    Sequential::new()
        .add("fc1", Linear::with_init(784, 128, Init::He, 1, dev)?)?
        .add("relu", Relu::new())?
        .add("fc2", Linear::with_init(128, 10, Init::He, 2, dev)?)
}

fn adam() -> Optimizer {
    Optimizer::adam(1e-3, 0.9, 0.999)
}

/// Trains on 100 synthetic images for `WGNN_KILL_EPOCHS` epochs, checkpointing into `dir`
/// every epoch, resuming from `WGNN_KILL_RESUME` when set.
fn child(dir: &Path) -> Result<()> {
    let cpu = Device::cpu();
    let mut rng = SplitMix64::new(7);
    let images: Vec<u8> = (0..100 * 784).map(|_| rng.next_u64() as u8).collect();
    let labels: Vec<u8> = (0..100).map(|i| (i % 10) as u8).collect();
    let data = DeviceDataset::from_bytes(&images, &labels, [1, 28, 28], 10, &cpu)?;
    let epochs = std::env::var(EPOCHS)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let cfg = TrainConfig {
        epochs,
        batch_size: 50,
        checkpoint_dir: Some(dir.to_path_buf()),
        resume: std::env::var(RESUME).ok().map(PathBuf::from),
        ..TrainConfig::default()
    };
    fit(
        &mut net(&cpu)?,
        &cross_entropy,
        &mut adam(),
        &data,
        &data,
        &cfg,
    )?;
    Ok(())
}

fn child_command(dir: &Path) -> Result<Command> {
    let exe = std::env::current_exe().map_err(|e| wgnn::Error::io(Path::new("current_exe"), e))?;
    let mut cmd = Command::new(exe);
    cmd.env(CHILD, dir)
        .env_remove(RESUME)
        .env_remove(EPOCHS)
        .stdout(Stdio::null());
    Ok(cmd)
}

/// Temporary checkpoint files in `dir` (`*.safetensors.tmpPID`).
fn temps(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .map(|it| {
            it.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.contains(".safetensors.tmp"))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

fn fail(msg: String) -> wgnn::Error {
    wgnn::Error::invalid("kill_resume", msg)
}

fn parent() -> Result<()> {
    let root = std::env::temp_dir().join(format!("wgnn-kill-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let mut rng = SplitMix64::new(2024);
    let cpu = Device::cpu();
    let started = Instant::now();
    let (mut left_temps, mut epochs_at_kill) = (0, Vec::new());
    for run in 0..RUNS {
        let dir = root.join(format!("run-{run}"));
        let last = dir.join("last.safetensors");
        let mut child = child_command(&dir)?
            .spawn()
            .map_err(|e| fail(format!("spawn: {e}")))?;
        // Wait for the first checkpoint, then kill at a random point of the epochs after it.
        let deadline = Instant::now() + Duration::from_secs(120);
        while !last.exists() {
            if Instant::now() > deadline {
                let _ = child.kill();
                return Err(fail(format!("run {run}: no checkpoint after 120 s")));
            }
            if let Ok(Some(status)) = child.try_wait() {
                return Err(fail(format!("run {run}: the child ended early: {status}")));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let wait_us = rng.next_u64() % 200_000;
        std::thread::sleep(Duration::from_micros(wait_us));
        child.kill().map_err(|e| fail(format!("kill: {e}")))?;
        let _ = child.wait();
        if !temps(&dir).is_empty() {
            left_temps += 1;
        }

        // The last checkpoint loads whole.
        let info = checkpoint::load(&last, &mut net(&cpu)?, &mut adam()).map_err(|e| {
            fail(format!(
                "run {run}: the last checkpoint after the kill: {e}"
            ))
        })?;
        epochs_at_kill.push(info.epoch);

        // Resume for one more epoch into the same directory.
        let status = child_command(&dir)?
            .env(RESUME, &last)
            .env(EPOCHS, (info.epoch + 1).to_string())
            .status()
            .map_err(|e| fail(format!("spawn: {e}")))?;
        if !status.success() {
            return Err(fail(format!(
                "run {run}: resuming from epoch {} failed: {status}",
                info.epoch
            )));
        }
        let resumed = checkpoint::load(&last, &mut net(&cpu)?, &mut adam())?;
        if resumed.epoch != info.epoch + 1 || resumed.run_id != info.run_id {
            return Err(fail(format!(
                "run {run}: after resuming from epoch {} the last checkpoint is epoch {} of run {:?} (was {:?})",
                info.epoch, resumed.epoch, resumed.run_id, info.run_id
            )));
        }
        let stale = temps(&dir);
        if !stale.is_empty() {
            return Err(fail(format!(
                "run {run}: temporary files survived the next save: {stale:?}"
            )));
        }
    }
    let _ = std::fs::remove_dir_all(&root);
    println!(
        "kill_resume: {RUNS} runs killed after epochs {}..={} ({left_temps} kills left a \
         temporary file), every one resumed from its last checkpoint with no temporary file \
         after the next save, in {:.1} s",
        epochs_at_kill.iter().min().unwrap_or(&0),
        epochs_at_kill.iter().max().unwrap_or(&0),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
