//! Dispatch of `shaders/rnn.wgsl`: the fused pointwise work of one recurrent time step
//! (RNN, GRU, LSTM), forward and backward, one thread per state element.

use super::u32_of;
use crate::error::{Error, Result};
use crate::gpu::buffers::GpuBuffer;
use crate::gpu::context::GpuContext;
use crate::gpu::kernels::{rnn as k, uniform};
use crate::gpu::pipelines::KernelKey;
use crate::ops::{RnnCell, RnnCellBwd, RnnCellFwd, RnnStep};

uniform! {
    /// `Params` of `shaders/rnn.wgsl`.
    pub(crate) struct RnnParams {
        steps: u32,
        batch: u32,
        hidden: u32,
        t: u32,
    }
}

impl RnnParams {
    fn new(op: &'static str, s: &RnnStep) -> Result<RnnParams> {
        // The largest index a kernel forms: the saved values of the last step.
        u32_of(
            op,
            (s.steps + 1) * s.state() * s.cell.saved().max(s.cell.gates()),
        )?;
        Ok(RnnParams {
            steps: u32_of(op, s.steps)?,
            batch: u32_of(op, s.batch)?,
            hidden: u32_of(op, s.hidden)?,
            t: u32_of(op, s.t)?,
        })
    }
}

fn lstm_needs(op: &'static str, what: &str) -> Error {
    Error::invalid(op, format!("the LSTM needs its {what} buffer"))
}

impl GpuContext {
    /// One forward time step (see [`RnnCellFwd`]).
    pub(super) fn rnn_cell_impl(&self, s: &RnnStep, b: RnnCellFwd<'_, GpuBuffer>) -> Result<()> {
        const OP: &str = "rnn_cell";
        let p = RnnParams::new(OP, s)?;
        let groups = self.grid(s.state(), 256)?;
        let mut bind: Vec<(u32, &GpuBuffer)> = vec![
            (1, b.xw),
            (2, b.hh),
            (3, b.bias),
            (4, &*b.hprev),
            (6, &*b.act),
            (7, &*b.out),
            (8, &*b.h),
        ];
        let kernel = match s.cell {
            RnnCell::Tanh => &k::RNN_TANH_FWD,
            RnnCell::Gru => &k::GRU_FWD,
            RnnCell::Lstm => {
                bind.push((5, &*b.cs.ok_or_else(|| lstm_needs(OP, "cell-state"))?));
                &k::LSTM_FWD
            }
        };
        let key = KernelKey::new(kernel).constant("GATES", s.cell.gates() as u32);
        self.dispatch(&key, bytemuck::bytes_of(&p), &bind, groups)
    }

    /// One backward time step (see [`RnnCellBwd`]).
    pub(super) fn rnn_cell_bwd_impl(
        &self,
        s: &RnnStep,
        b: RnnCellBwd<'_, GpuBuffer>,
    ) -> Result<()> {
        const OP: &str = "rnn_cell_backward";
        let p = RnnParams::new(OP, s)?;
        let groups = self.grid(s.state(), 256)?;
        let mut bind: Vec<(u32, &GpuBuffer)> = vec![
            (10, b.act),
            (13, b.gout),
            (14, &*b.dh),
            (16, &*b.dxw),
            (17, &*b.dhh),
        ];
        let kernel = match s.cell {
            RnnCell::Tanh => &k::RNN_TANH_BWD,
            RnnCell::Gru => {
                let all = b
                    .dhh_all
                    .ok_or_else(|| Error::invalid(OP, "the GRU needs its dhh_all buffer"))?;
                bind.push((11, b.hprev));
                bind.push((18, &*all));
                &k::GRU_BWD
            }
            RnnCell::Lstm => {
                bind.push((12, b.cs.ok_or_else(|| lstm_needs(OP, "cell-state"))?));
                bind.push((15, &*b.dc.ok_or_else(|| lstm_needs(OP, "dc"))?));
                &k::LSTM_BWD
            }
        };
        let key = KernelKey::new(kernel).constant("GATES", s.cell.gates() as u32);
        self.dispatch(&key, bytemuck::bytes_of(&p), &bind, groups)
    }
}
