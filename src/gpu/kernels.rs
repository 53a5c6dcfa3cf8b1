//! The Rust ↔ WGSL contract: one table naming every kernel the Rust side dispatches.
//!
//! Each entry is a `static` [`KernelDef`]: its shader family, its WGSL entry point, the storage
//! bindings it is given (slot, declared access, element type) and the uniform struct of its
//! shader (binding 0, the Rust twin of the shader's `struct Params`, declared with
//! [`uniform!`]). Dispatch sites name kernels only through these statics
//! (`KernelKey::new(&kernels::softmax::SOFTMAX)`), never by a string, and
//! [`GpuContext::dispatch`](super::GpuContext::dispatch) checks every dispatch against its
//! entry ([`KernelDef::check`]): the slots it fills must be exactly the entry's, the parameter
//! bytes the twin's size. The `contract` test at the bottom parses every shader with naga and
//! checks the other half — that each entry point exists, uses exactly these bindings with this
//! access and element type, that every `@compute` entry point is in the table, and that each
//! `Params` struct has the twin's size, field names, offsets, sizes and scalar types — so a
//! drift between the two languages fails `cargo test` instead of a user's run.
//!
//! What does not live here: the dispatch code (`ops/<family>.rs`), pipeline compilation
//! (`pipelines.rs`) and the uniform structs themselves (beside the dispatch code that fills
//! them).

use super::faults::FAULT_SLOT;
use super::ops::augment::AugmentParams;
use super::ops::bmm::BmmParams;
use super::ops::cast::CastParams;
use super::ops::data::GatherParams;
use super::ops::elementwise::EltParams;
use super::ops::gemm::MatmulParams;
use super::ops::im2col::WindowParams;
use super::ops::index::IndexParams;
use super::ops::layout::TransposeParams;
use super::ops::norm::BnParams;
use super::ops::optim::OptimParams;
use super::ops::pointwise::PointwiseParams;
use super::ops::reduce::RowParams;
use super::ops::rnn::RnnParams;
use super::ops::scaler::ScalerParams;
use super::pipelines::Shader;
use crate::bench::PeakParams;

/// The element type of a storage binding or a uniform field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Elem {
    /// The shader's scalar alias `T`: f32 in the f32 instance, f16 in the f16 one.
    T,
    /// f32 in every instance (partial sums, statistics, optimizer state).
    F32,
    /// u32 (indices, labels, packed bytes, flags).
    U32,
}

/// How a kernel may use a storage binding (its WGSL declaration:
/// `var<storage, read>` or `var<storage, read_write>`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Access {
    /// `var<storage, read>`
    Read,
    /// `var<storage, read_write>`
    ReadWrite,
}

/// One storage binding a kernel is given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Slot {
    /// `@binding(n)` in group 0 (binding 0 is always the uniform parameters).
    pub binding: u32,
    /// Its declared access.
    pub access: Access,
    /// Its element type (of the array, the vector in it or the atomic).
    pub elem: Elem,
}

/// One field of a uniform struct, as the Rust twin lays it out (read by the contract test).
#[derive(Clone, Copy, Debug)]
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) struct Field {
    /// The field's name (padding fields start with `_`).
    pub name: &'static str,
    /// Byte offset in the struct.
    pub offset: usize,
    /// Byte size.
    pub size: usize,
    /// Scalar type (of the array elements for an array field).
    pub elem: Elem,
}

/// The layout of a `#[repr(C)]` uniform struct (see [`uniform!`]).
#[derive(Debug)]
pub(crate) struct UniformLayout {
    /// The Rust type's name.
    pub name: &'static str,
    /// `size_of` the struct.
    pub size: usize,
    /// Its fields in declaration order (read by the contract test).
    #[cfg_attr(not(test), allow(dead_code))]
    pub fields: &'static [Field],
}

/// A Rust twin of a WGSL uniform struct: plain old data with a known field layout.
pub(crate) trait Uniform: bytemuck::Pod {
    /// Its layout, compared with the WGSL struct by the contract test.
    const LAYOUT: UniformLayout;
}

/// A type a uniform field may have: u32, f32 or a fixed array of them.
pub(crate) trait FieldType {
    /// Its scalar.
    const ELEM: Elem;
}

impl FieldType for u32 {
    const ELEM: Elem = Elem::U32;
}

impl FieldType for f32 {
    const ELEM: Elem = Elem::F32;
}

impl<T: FieldType, const N: usize> FieldType for [T; N] {
    const ELEM: Elem = T::ELEM;
}

/// Declares a uniform struct: `#[repr(C)]`, `Pod`, and a [`Uniform`] impl listing its fields
/// (name, `offset_of!`, size, scalar) for the contract test. Attributes (docs, extra derives)
/// pass through.
macro_rules! uniform {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $( $(#[$fmeta:meta])* $fvis:vis $field:ident : $ty:ty ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[repr(C)]
        #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
        $vis struct $name {
            $( $(#[$fmeta])* $fvis $field: $ty, )*
        }

        impl $crate::gpu::kernels::Uniform for $name {
            const LAYOUT: $crate::gpu::kernels::UniformLayout =
                $crate::gpu::kernels::UniformLayout {
                    name: stringify!($name),
                    size: ::std::mem::size_of::<$name>(),
                    fields: &[$(
                        $crate::gpu::kernels::Field {
                            name: stringify!($field),
                            offset: ::std::mem::offset_of!($name, $field),
                            size: ::std::mem::size_of::<$ty>(),
                            elem: <$ty as $crate::gpu::kernels::FieldType>::ELEM,
                        },
                    )*],
                };
        }
    };
}
pub(crate) use uniform;

/// One kernel the Rust side dispatches: a WGSL entry point of a shader family with the
/// bindings it is given.
#[derive(Debug)]
pub(crate) struct KernelDef {
    /// Its shader family.
    pub shader: Shader,
    /// Its `@compute` entry point.
    pub entry: &'static str,
    /// The storage bindings of the kernel (binding 0, the parameters, aside); a dispatch fills
    /// each but the fault record's ([`FAULT_SLOT`]), which the context binds.
    pub slots: &'static [Slot],
    /// Bit `b` set for each binding `b` of `slots`.
    mask: u64,
    /// The Rust twin of the shader's `struct Params` (binding 0).
    pub params: &'static UniformLayout,
}

impl KernelDef {
    /// An entry (a `const fn`, so a duplicate slot, slot 0 or a slot past 63 in the table
    /// fails the build).
    const fn new(
        shader: Shader,
        entry: &'static str,
        slots: &'static [Slot],
        params: &'static UniformLayout,
    ) -> KernelDef {
        let mut mask = 0u64;
        let mut i = 0;
        while i < slots.len() {
            let b = slots[i].binding;
            assert!(
                b > 0 && b < 64,
                "binding 0 is the parameters; slots are 1..=63"
            );
            assert!(mask & (1 << b) == 0, "a slot listed twice");
            assert!(
                b != FAULT_SLOT
                    || (matches!(slots[i].access, Access::ReadWrite)
                        && matches!(slots[i].elem, Elem::U32)),
                "the fault record's slot is read_write u32 (see gpu/faults.rs)"
            );
            mask |= 1 << b;
            i += 1;
        }
        KernelDef {
            shader,
            entry,
            slots,
            mask,
            params,
        }
    }

    /// `shader.wgsl::entry`, for messages and labels.
    pub fn name(&self) -> String {
        format!("{}::{}", self.shader.file(), self.entry)
    }

    /// The slot bound at `binding`, if this kernel has one.
    pub fn slot(&self, binding: u32) -> Option<&'static Slot> {
        self.slots.iter().find(|s| s.binding == binding)
    }

    /// Checks one dispatch against the entry: `params_len` bytes of parameters (the twin's
    /// size) and storage buffers at `bindings`, which must be exactly the entry's slots, each
    /// once. A bit mask per dispatch, so it runs on every one; the message names the shader,
    /// the entry and the offending slot.
    pub fn check(
        &self,
        params_len: usize,
        bindings: impl IntoIterator<Item = u32>,
    ) -> Result<(), String> {
        if params_len != self.params.size {
            return Err(format!(
                "{}: {params_len} bytes of parameters, but its shader's Params is {} ({} bytes)",
                self.name(),
                self.params.name,
                self.params.size
            ));
        }
        // The fault record is the context's to bind (see `gpu/faults.rs`).
        let fault_bit = 1u64 << FAULT_SLOT;
        let mut given = self.mask & fault_bit;
        for b in bindings {
            let bit = 1u64
                .checked_shl(b)
                .filter(|&bit| b > 0 && bit != fault_bit)
                .unwrap_or(0);
            if bit == 0 || self.mask & bit == 0 {
                return Err(format!(
                    "{}: binding {b} given, but the entry has no storage slot {b} (its slots: {})",
                    self.name(),
                    self.slot_list()
                ));
            }
            if given & bit != 0 {
                return Err(format!("{}: binding {b} given twice", self.name()));
            }
            given |= bit;
        }
        if given != self.mask {
            let missing = (self.mask & !given).trailing_zeros();
            let s = self.slot(missing).expect("a bit of the mask");
            return Err(format!(
                "{}: slot {missing} ({:?} {:?}) left unbound",
                self.name(),
                s.access,
                s.elem
            ));
        }
        Ok(())
    }

    fn slot_list(&self) -> String {
        let v: Vec<String> = self.slots.iter().map(|s| s.binding.to_string()).collect();
        v.join(", ")
    }
}

/// Declares the table: per shader family a module of `static` [`KernelDef`]s, and [`ALL`].
/// A slot is written `binding access elem`: access `r` (read) or `rw` (read_write), elem
/// `T`, `f32` or `u32`.
macro_rules! kernels {
    (@access r) => { Access::Read };
    (@access rw) => { Access::ReadWrite };
    (@elem T) => { Elem::T };
    (@elem f32) => { Elem::F32 };
    (@elem u32) => { Elem::U32 };
    (
        $(
            $(#[$fmeta:meta])*
            $family:ident: $shader:ident, $params:ty {
                $(
                    $(#[$kmeta:meta])*
                    $name:ident = $entry:literal [$($b:literal $acc:ident $elem:ident),* $(,)?];
                )*
            }
        )*
    ) => {
        $(
            $(#[$fmeta])*
            pub(crate) mod $family {
                use super::*;
                $(
                    $(#[$kmeta])*
                    pub(crate) static $name: KernelDef = KernelDef::new(
                        Shader::$shader,
                        $entry,
                        &[$(Slot {
                            binding: $b,
                            access: kernels!(@access $acc),
                            elem: kernels!(@elem $elem),
                        }),*],
                        &<$params as Uniform>::LAYOUT,
                    );
                )*
            }
        )*

        /// Every kernel of the table (the contract test walks it).
        #[cfg_attr(not(test), allow(dead_code))]
        pub(crate) static ALL: &[&KernelDef] = &[$($(&$family::$name,)*)*];
    };
}

kernels! {
    /// `shaders/elementwise.wgsl`: one thread per element (`out` 1, `x` 2), or per row
    /// (`picks` 4).
    elementwise: Elementwise, EltParams {
        /// `out = alpha`
        FILL = "fill" [1 rw T];
        /// `out += alpha · x`
        AXPY = "axpy" [1 rw T, 2 r T];
        /// A dropout keep-mask scaled by `1 / (1 - ratio)`.
        DROPOUT_MASK = "dropout_mask" [1 rw T];
        /// `out = x · mask`, the mask regenerated from the seed.
        DROPOUT_APPLY = "dropout_apply" [1 rw T, 2 r T];
        /// Uniform values in `[alpha, beta)` from the counter hash.
        FILL_UNIFORM = "fill_uniform" [1 rw T];
        /// Normal values (mean `alpha`, std `beta`) by Box–Muller on the counter hash.
        FILL_NORMAL = "fill_normal" [1 rw T];
        /// One categorical draw per row of logits `[n, cols]` into u32 picks.
        CATEGORICAL = "categorical" [4 rw u32, 2 r T];
    }

    /// `shaders/cast.wgsl`: f32 ↔ f16 (f16 adapters only).
    cast: Cast, CastParams {
        /// f32 → f16
        F32_TO_F16 = "f32_to_f16" [1 rw T, 2 r f32];
        /// f16 → f32
        F16_TO_F32 = "f16_to_f32" [3 rw f32, 4 r T];
    }

    /// `shaders/reduce.wgsl`: row and column sums, argmax, accuracy counts.
    reduce: Reduce, RowParams {
        /// Column sums of up to one block of rows.
        SUM_ROWS = "sum_rows" [1 rw T, 2 r T];
        /// f32 partial column sums of each block of rows.
        SUM_ROWS_PART = "sum_rows_part" [2 r T, 5 rw f32];
        /// f32 partials of f32 partials.
        SUM_ROWS_PART_F32 = "sum_rows_part_f32" [5 rw f32, 6 r f32];
        /// The last stage: `alpha · Σ partials + beta · out`.
        SUM_ROWS_FINAL = "sum_rows_final" [1 rw T, 6 r f32];
        /// Row sums, one workgroup per row.
        SUM_COLS = "sum_cols" [1 rw T, 2 r T];
        /// f32 partial row sums of each block of columns.
        SUM_COLS_PART = "sum_cols_part" [2 r T, 5 rw f32];
        /// Row sums of f32 partials.
        SUM_COLS_F32 = "sum_cols_f32" [1 rw T, 6 r f32];
        /// Index of each row's maximum.
        ARGMAX_ROWS = "argmax_rows" [2 r T, 3 rw u32];
        /// Rows whose argmax equals the label.
        COUNT_CORRECT = "count_correct" [2 r T, 3 rw u32, 4 r u32];
    }

    /// `shaders/reduce_subgroup.wgsl` (appended to reduce.wgsl): the workgroup sums with
    /// subgroup operations. Its copies of reduce.wgsl's entries are dispatched through
    /// [`reduce`].
    reduce_subgroup: ReduceSubgroup, RowParams {
        /// [`reduce::SUM_COLS`] with subgroups.
        SUM_COLS_SG = "sum_cols_sg" [1 rw T, 2 r T];
        /// [`reduce::SUM_COLS_PART`] with subgroups.
        SUM_COLS_PART_SG = "sum_cols_part_sg" [2 r T, 5 rw f32];
        /// [`reduce::SUM_COLS_F32`] with subgroups.
        SUM_COLS_F32_SG = "sum_cols_f32_sg" [1 rw T, 6 r f32];
        /// [`reduce::COUNT_CORRECT`] with subgroups.
        COUNT_CORRECT_SG = "count_correct_sg" [2 r T, 3 rw u32, 4 r u32];
    }

    /// `shaders/softmax.wgsl`: row softmax, its backward and the fused cross-entropy.
    softmax: Softmax, RowParams {
        /// Softmax of each row.
        SOFTMAX = "softmax" [1 rw T, 2 r T];
        /// `dx = y · (dy - Σ y·dy)`
        SOFTMAX_BWD = "softmax_bwd" [1 rw T, 2 r T, 3 r T];
        /// Probabilities and per-row losses against u32 labels.
        /// An out-of-range label goes into the fault record (63).
        SOFTMAX_CE = "softmax_ce" [1 rw T, 2 r T, 4 r u32, 5 rw T, 63 rw u32];
        /// `dx = scale · (p - onehot) (· dout)`
        SOFTMAX_CE_BWD = "softmax_ce_bwd" [1 rw T, 2 r T, 3 r T, 4 r u32];
    }

    /// `shaders/im2col.wgsl`: the column matrix of a convolution and its adjoint.
    im2col: Im2col, WindowParams {
        /// NCHW → columns.
        IM2COL = "im2col" [1 rw T, 2 r T];
        /// Columns → NCHW (summing overlaps).
        COL2IM = "col2im" [1 rw T, 2 r T];
    }

    /// `shaders/pool.wgsl`: max pooling.
    pool: Pool, WindowParams {
        /// Window maxima and their u32 argmax.
        MAX_POOL = "max_pool" [1 rw T, 2 rw u32, 3 r T];
        /// Gradients routed through the argmax.
        MAX_POOL_BWD = "max_pool_bwd" [1 rw T, 2 rw u32, 3 r T];
    }

    /// `shaders/layout.wgsl`: layout changes and resampling.
    layout: Layout, TransposeParams {
        /// Batched 2-D transpose.
        TRANSPOSE = "transpose" [1 rw T, 2 r T];
        /// Bilinear resize of each plane.
        RESIZE_BILINEAR = "resize_bilinear" [1 rw T, 2 r T];
        /// A strided block copy (concatenation, slicing).
        COPY_BLOCK = "copy_block" [1 rw T, 2 r T];
    }

    /// `shaders/data.wgsl`: batch gathers from packed bytes, embeddings, one-hot.
    data: Data, GatherParams {
        /// Rows of packed u8 pixels → scaled floats.
        GATHER_F32 = "gather_f32" [1 rw T, 2 r u32, 3 r u32];
        /// Rows of packed u8 labels → u32.
        GATHER_U32 = "gather_u32" [2 r u32, 3 r u32, 4 rw u32];
        /// Embedding lookup: table rows by u32 index.
        GATHER_ROWS = "gather_rows" [1 rw T, 3 r u32, 5 r T];
        /// One-hot rows of u32 indices.
        ONE_HOT = "one_hot" [1 rw T, 3 r u32];
    }

    /// `shaders/norm.wgsl`: batch normalization.
    norm: Norm, BnParams {
        /// Per-channel mean and inverse std (f32).
        BN_STATS = "bn_stats" [2 r T, 6 rw f32, 8 rw f32];
        /// `y = gamma · x̂ + beta`
        BN_APPLY = "bn_apply" [1 rw T, 2 r T, 4 r T, 5 r T, 7 r f32];
        /// dgamma and dbeta (f32).
        BN_BWD_REDUCE = "bn_bwd_reduce" [2 r T, 3 r T, 6 rw f32, 7 r f32, 8 rw f32];
        /// dx from the reductions.
        BN_BWD_DX = "bn_bwd_dx" [1 rw T, 2 r T, 3 r T, 4 r T, 6 rw f32, 7 r f32, 8 rw f32];
    }

    /// `shaders/augment.wgsl`: on-device data augmentation.
    augment: Augment, AugmentParams {
        /// Flip, affine, brightness and contrast.
        AUGMENT = "augment" [1 rw T, 2 r T];
        /// The elastic field's horizontal pass (f32 scratch rows).
        ELASTIC_ROWS = "elastic_rows" [3 rw f32];
        /// [`augment::AUGMENT`] plus the elastic displacement from the scratch rows.
        AUGMENT_ELASTIC = "augment_elastic" [1 rw T, 2 r T, 3 rw f32];
    }

    /// `shaders/scaler.wgsl`: the dynamic loss scaler (state: four atomic u32).
    scaler: Scaler, ScalerParams {
        /// Sets the initial scale.
        INIT = "init" [2 rw u32];
        /// `x *= scale`
        SCALE_IN_PLACE = "scale_in_place" [1 rw T, 2 rw u32];
        /// Flags a non-finite value of x.
        NONFINITE = "nonfinite" [1 rw T, 2 rw u32];
        /// Grows or backs off the scale.
        UPDATE = "update" [2 rw u32];
    }

    /// `shaders/matmul.wgsl`: the GEMM core (matmul and implicit-GEMM convolutions).
    matmul: Matmul, MatmulParams {
        /// Register-blocked GEMM.
        MATMUL_RB = "matmul_rb" [1 rw T, 2 r T, 3 r T, 5 r T, 6 r T];
        /// Register-blocked split-K partials (f32).
        MATMUL_RB_PART = "matmul_rb_part" [2 r T, 3 r T, 4 rw f32, 6 r T];
        /// Register-blocked GEMM with 16-byte loads (`a4` 8, `b4` 9).
        MATMUL_RB4 = "matmul_rb4" [1 rw T, 5 r T, 8 r T, 9 r T];
        /// [`matmul::MATMUL_RB4`]'s split-K partials.
        MATMUL_RB4_PART = "matmul_rb4_part" [4 rw f32, 8 r T, 9 r T];
        /// Workgroup-tiled GEMM.
        MATMUL_TILED = "matmul_tiled" [1 rw T, 2 r T, 3 r T, 5 r T, 6 r T];
        /// Workgroup-tiled split-K partials.
        MATMUL_TILED_PART = "matmul_tiled_part" [2 r T, 3 r T, 4 rw f32, 6 r T];
        /// Sums a weight gradient's partials into dW and db.
        CONV_DW_FINAL = "conv_dw_final" [1 rw T, 4 rw f32, 7 rw T];
    }

    /// `shaders/optim.wgsl`: optimizer updates (f32 master weights).
    optim: Optim, OptimParams {
        /// One tensor: w 1, g 2, states 3 and 4, the overflow guard 5.
        UPDATE = "update" [1 rw f32, 2 r f32, 3 rw f32, 4 rw f32, 5 r u32];
        /// Seven tensors at once: slot j binds w, g, s1, s2 at 10 + 4j ..= 13 + 4j.
        UPDATE_MULTI = "update_multi" [
            5 r u32,
            10 rw f32, 11 r f32, 12 rw f32, 13 rw f32,
            14 rw f32, 15 r f32, 16 rw f32, 17 rw f32,
            18 rw f32, 19 r f32, 20 rw f32, 21 rw f32,
            22 rw f32, 23 r f32, 24 rw f32, 25 rw f32,
            26 rw f32, 27 r f32, 28 rw f32, 29 rw f32,
            30 rw f32, 31 r f32, 32 rw f32, 33 rw f32,
            34 rw f32, 35 r f32, 36 rw f32, 37 rw f32,
        ];
    }

    /// `shaders/pointwise.wgsl` + the op table's `fn pw`: every elementwise op, strided.
    pointwise: Pointwise, PointwiseParams {
        /// `out = pw(OP, u, v, w)` with broadcasting strides.
        POINTWISE = "pointwise" [1 rw T, 2 r T, 3 r T, 4 r T];
    }

    /// `shaders/index.wgsl`: index_select, gather, and row extrema with their index.
    index: Index, IndexParams {
        /// `out = x[.., idx, ..]`
        INDEX_SELECT = "index_select" [1 rw T, 2 r T, 3 r u32];
        /// Its adjoint (scatter-add, no atomics: one thread per dx element).
        INDEX_SELECT_BWD = "index_select_bwd" [1 rw T, 2 r T, 3 r u32];
        /// `out = x.gather(dim, idx)`
        GATHER = "gather" [1 rw T, 2 r T, 3 r u32];
        /// Its adjoint.
        GATHER_BWD = "gather_bwd" [1 rw T, 2 r T, 3 r u32];
        /// Max (or min) of each row and its u32 index.
        EXTREME_ROWS = "extreme_rows" [1 rw T, 2 r T, 4 rw u32];
    }

    /// `shaders/bmm.wgsl`: batched matmul with strides.
    bmm: Bmm, BmmParams {
        /// `c[b] = op(a[b]) · op(b[b])`
        BMM = "bmm" [1 rw T, 2 r T, 3 r T];
    }

    /// `shaders/rnn.wgsl`: one recurrent time step's pointwise work (forward 1–8, backward
    /// 10–18; see `RnnCellFwd` / `RnnCellBwd`).
    rnn: Rnn, RnnParams {
        /// `h = tanh(xw + hh + b)`
        RNN_TANH_FWD = "rnn_tanh_fwd" [1 r T, 2 r T, 3 r T, 4 rw T, 6 rw T, 7 rw T, 8 rw T];
        /// The GRU's gates and new state.
        GRU_FWD = "gru_fwd" [1 r T, 2 r T, 3 r T, 4 rw T, 6 rw T, 7 rw T, 8 rw T];
        /// The LSTM's gates, cell state and new state.
        LSTM_FWD = "lstm_fwd" [1 r T, 2 r T, 3 r T, 4 rw T, 5 rw T, 6 rw T, 7 rw T, 8 rw T];
        /// Its backward.
        RNN_TANH_BWD = "rnn_tanh_bwd" [10 r T, 13 r T, 14 rw T, 16 rw T, 17 rw T];
        /// Its backward.
        GRU_BWD = "gru_bwd" [10 r T, 11 r T, 13 r T, 14 rw T, 16 rw T, 17 rw T, 18 rw T];
        /// Its backward.
        LSTM_BWD = "lstm_bwd" [10 r T, 12 r T, 13 r T, 14 rw T, 15 rw T, 16 rw T, 17 rw T];
    }

    /// `shaders/peak.wgsl`: the benchmark microkernel (`crate::bench`).
    peak: Peak, PeakParams {
        /// Independent vec4 FMA chains: the adapter's FMA peak.
        FMA_PEAK = "fma_peak" [1 rw f32];
    }
}

#[cfg(test)]
mod contract;
