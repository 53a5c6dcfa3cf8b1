//! Before the first epoch of [`fit_validated`](super::fit_validated): the arguments are
//! checked, the run resumes from a checkpoint, the checkpoint directory is checked (no other
//! run's checkpoints) and made, and the loss scaler (mixed precision) and the TensorBoard
//! writer are created.
//!
//! The checks and the side effects interleave in one fixed order (resuming comes before the
//! dtype and patience checks), which decides the error a run with several faults reports;
//! `start` keeps that order, so keep it when adding a check.

use super::{LossFn, Precision, Run, TrainConfig, checkpoint};
use crate::data::DeviceDataset;
use crate::device::Device;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::gpu::Counters;
use crate::nn::{Module, ModuleExt};
use crate::optim::{LossScaler, Optimizer};
use crate::tensorboard::SummaryWriter;
use std::path::Path;

impl<'a> Run<'a> {
    /// Checks the arguments, resumes from `cfg.resume` and sets up what every epoch needs;
    /// returns the run and the 0-based epoch it starts at (0, or the one after the
    /// checkpoint's). The model is left in training mode.
    pub(super) fn start(
        model: &'a mut dyn Module,
        loss_fn: &'a LossFn,
        opt: &'a mut Optimizer,
        train: &'a DeviceDataset,
        val: Option<&'a DeviceDataset>,
        test: &'a DeviceDataset,
        cfg: &'a TrainConfig,
    ) -> Result<(Run<'a>, usize)> {
        if cfg.batch_size == 0 || cfg.eval_batch_size == 0 {
            return Err(Error::invalid("fit", "batch sizes must be positive"));
        }
        if train.is_empty() {
            return Err(Error::invalid("fit", "empty training set"));
        }
        let device = train.device();
        let (first_epoch, run_id) = match &cfg.resume {
            Some(path) => {
                let info = resume(path, model, opt, cfg)?;
                // A checkpoint from before run ids starts a new run.
                let id = info.run_id.unwrap_or_else(checkpoint::new_run_id);
                (info.epoch, id)
            }
            None => (0, checkpoint::new_run_id()),
        };
        model.train();
        check_f32_master_weights(model)?;
        let scaler = loss_scaler(cfg.precision, &device)?;
        check_patience(cfg, val)?;
        // The arguments are fine: now the directory, which must hold no other run's files.
        if let Some(dir) = &cfg.checkpoint_dir {
            checkpoint::check_dir(dir, Some(&run_id))?;
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let board = match &cfg.tensorboard {
            Some(dir) => Some(SummaryWriter::new(dir)?),
            None => None,
        };
        let run = Run {
            steps_per_epoch: train.len().div_ceil(cfg.batch_size),
            base_lr: opt.lr(),
            model,
            loss_fn,
            opt,
            train,
            val,
            test,
            cfg,
            run_id,
            device,
            scaler,
            board,
            epochs: Vec::new(),
            loss_log: Vec::new(),
            best: None,
            stopped_early: false,
            total_steps: 0,
            step_counters: Counters::default(),
        };
        Ok((run, first_epoch))
    }
}

/// Loads the checkpoint at `path` into `model` and `opt` (saying so when verbose) and
/// returns what it says: the number of epochs it had done is the 0-based epoch to go on with.
fn resume(
    path: &Path,
    model: &mut dyn Module,
    opt: &mut Optimizer,
    cfg: &TrainConfig,
) -> Result<checkpoint::CheckpointInfo> {
    let options = checkpoint::LoadOptions {
        allow_non_finite: cfg.allow_non_finite,
    };
    let info = checkpoint::load_with(path, model, opt, options)?;
    if cfg.verbose {
        println!(
            "resumed from {} after epoch {} ({} optimizer steps)",
            path.display(),
            info.epoch,
            info.optim_steps
        );
    }
    Ok(info)
}

/// Refuses a model whose parameters are not f32: `fit` updates f32 master weights, and
/// mixed precision computes in f16 from casts of them rather than from f16 weights.
fn check_f32_master_weights(model: &mut dyn Module) -> Result<()> {
    if model.dtype() == DType::F32 {
        return Ok(());
    }
    Err(Error::invalid(
        "fit",
        format!(
            "the model's parameters are {}: train f32 master weights (mixed precision \
             computes in f16 from them)",
            model.dtype()
        ),
    ))
}

/// The loss scaler of mixed precision (`None` in f32); mixed precision on an adapter
/// without SHADER_F16 is refused here rather than at the first f16 kernel.
fn loss_scaler(precision: Precision, device: &Device) -> Result<Option<LossScaler>> {
    match precision {
        Precision::F32 => Ok(None),
        Precision::Mixed => {
            if device.gpu_context().is_some_and(|c| !c.supports_f16()) {
                return Err(Error::UnsupportedDType {
                    op: "mixed precision",
                    dtype: DType::F16,
                    why: format!("on {device}: it lacks SHADER_F16"),
                });
            }
            Ok(Some(LossScaler::standard(device)?))
        }
    }
}

/// Early stopping watches the validation accuracy, so it needs a validation set, and a
/// patience of at least one epoch.
fn check_patience(cfg: &TrainConfig, val: Option<&DeviceDataset>) -> Result<()> {
    if cfg.patience.is_some() && val.is_none() {
        return Err(Error::invalid(
            "fit",
            "early stopping (patience) needs a validation set: hold one out (--val-split)",
        ));
    }
    if cfg.patience == Some(0) {
        return Err(Error::invalid("fit", "patience must be at least 1 epoch"));
    }
    Ok(())
}
