//! The elementwise ops, each declared once.
//!
//! One line of the `pointwise!` table below gives an op its name, its CPU body (Rust) and its
//! WGSL body, and names the rows that give its gradient: the CPU backend runs the Rust body in
//! one loop per op (so each vectorises on its own), the GPU backend compiles the WGSL bodies
//! into one `switch` that `shaders/pointwise.wgsl` calls, selected by an override constant (so
//! each op is its own pipeline with the other cases folded away), and the autograd rule of
//! every op is the same few lines in `tensor_ops/pointwise.rs`: the gradient rows run as
//! pointwise ops themselves. Adding an elementwise op is its row, its gradient row, and its
//! `Tensor` method.
//!
//! Every op reads its operands through [`Strided`]: the output's dims and each input's strides
//! (0 along a broadcast dim, permuted for a transpose), so NumPy broadcasting at any rank,
//! `expand`, `permute` and the contiguous case are one kernel.
//!
//! Conventions of the rows: inputs are named in the row; a forward row reads `x` (and `y`, `z`
//! for binary and ternary ops) and the scalars `a`, `b`; a gradient row of a unary op reads
//! `(g, x, y)` — the upstream gradient, the forward input and the forward **output** — and a
//! gradient row of a binary or ternary op reads `(g, x, y)` = the upstream gradient and the
//! first two forward inputs, and returns that input's share of the gradient (before any
//! broadcast dims are summed away). WGSL helpers (`erf`, `pow_signed`) live in
//! `shaders/pointwise.wgsl`; their Rust twins are below.

use crate::error::{Error, Result};

/// Most dims a pointwise op walks after merging contiguous ones (PyTorch allows more; eight
/// covers every network here, and a higher rank is a clear error).
pub const MAX_RANK: usize = 8;

/// Inputs a pointwise op can read.
pub const MAX_INPUTS: usize = 3;

/// How a pointwise kernel walks its operands: the output's dims (row-major) and, for each
/// input, the stride of each output dim in that input (0 where the input is broadcast).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Strided {
    /// Number of dims in use.
    pub rank: usize,
    /// The output's dims (the first `rank`).
    pub dims: [usize; MAX_RANK],
    /// Per input, its stride along each output dim.
    pub strides: [[usize; MAX_RANK]; MAX_INPUTS],
}

impl Strided {
    /// The walk over `out_dims` reading input `i` with `strides[i]` (one stride per output
    /// dim), with size-1 dims dropped and neighbouring dims merged wherever every input walks
    /// them as one (so the contiguous case is one flat loop).
    pub fn new(op: &'static str, out_dims: &[usize], strides: &[Vec<usize>]) -> Result<Strided> {
        let mut dims: Vec<usize> = Vec::new();
        let mut st: Vec<Vec<usize>> = vec![Vec::new(); strides.len()];
        for (d, &size) in out_dims.iter().enumerate() {
            if size == 1 {
                continue;
            }
            let merge = dims.last().is_some()
                && strides
                    .iter()
                    .zip(&st)
                    .all(|(s, m)| m.last().copied() == Some(s[d] * size));
            if merge {
                *dims.last_mut().expect("checked") *= size;
                for (s, m) in strides.iter().zip(st.iter_mut()) {
                    *m.last_mut().expect("checked") = s[d];
                }
            } else {
                dims.push(size);
                for (s, m) in strides.iter().zip(st.iter_mut()) {
                    m.push(s[d]);
                }
            }
        }
        if dims.len() > MAX_RANK {
            return Err(Error::invalid(
                op,
                format!(
                    "walks {} dims that cannot be merged (output {out_dims:?}); at most \
                     {MAX_RANK} are supported",
                    dims.len()
                ),
            ));
        }
        let mut out = Strided {
            rank: dims.len(),
            dims: [1; MAX_RANK],
            strides: [[0; MAX_RANK]; MAX_INPUTS],
        };
        out.dims[..dims.len()].copy_from_slice(&dims);
        for (i, s) in st.iter().enumerate() {
            out.strides[i][..s.len()].copy_from_slice(s);
        }
        Ok(out)
    }

    /// `n` contiguous elements of `inputs` inputs.
    pub fn flat(n: usize, inputs: usize) -> Strided {
        let mut w = Strided {
            rank: 1,
            dims: [1; MAX_RANK],
            strides: [[0; MAX_RANK]; MAX_INPUTS],
        };
        w.dims[0] = n;
        for s in w.strides.iter_mut().take(inputs) {
            s[0] = 1;
        }
        w
    }

    /// Elements of the output.
    pub fn numel(&self) -> usize {
        self.dims[..self.rank].iter().product()
    }

    /// True when every input is read contiguously (stride 1 over one merged dim) or is a
    /// single broadcast value.
    pub fn is_flat(&self, inputs: usize) -> bool {
        self.rank <= 1 && self.strides[..inputs].iter().all(|s| s[0] <= 1)
    }
}

/// Row-major strides of `dims`.
pub fn contiguous_strides(dims: &[usize]) -> Vec<usize> {
    let mut s = vec![0; dims.len()];
    let mut acc = 1;
    for d in (0..dims.len()).rev() {
        s[d] = acc;
        acc *= dims[d];
    }
    s
}

/// The strides with which an input of `dims` is read when broadcast (NumPy rules) to `out`:
/// right-aligned, 0 along dims where the input has size 1 or no dim at all.
pub fn broadcast_strides(dims: &[usize], out: &[usize]) -> Vec<usize> {
    let own = contiguous_strides(dims);
    let lead = out.len() - dims.len();
    (0..out.len())
        .map(|d| {
            if d < lead || dims[d - lead] == 1 {
                0
            } else {
                own[d - lead]
            }
        })
        .collect()
}

/// The NumPy broadcast of two shapes, or an error naming both.
pub fn broadcast_shapes(op: &'static str, a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    let rank = a.len().max(b.len());
    let at = |s: &[usize], d: usize| {
        let lead = rank - s.len();
        if d < lead { 1 } else { s[d - lead] }
    };
    (0..rank)
        .map(|d| match (at(a, d), at(b, d)) {
            (x, y) if x == y => Ok(x),
            (1, y) => Ok(y),
            (x, 1) => Ok(x),
            (x, y) => Err(Error::invalid(
                op,
                format!(
                    "shapes {a:?} and {b:?} do not broadcast: dim {d} (counted from the \
                     left of the broadcast shape) is {x} against {y}"
                ),
            )),
        })
        .collect()
}

/// `erf` by Abramowitz & Stegun 7.1.26 (absolute error below 1.5e-7 in exact arithmetic, about
/// 4e-7 in f32): the same formula as the WGSL `erf` of `shaders/pointwise.wgsl`, so the CPU and
/// the GPU agree (Rust's std has no stable `erf`).
pub fn erf(x: f32) -> f32 {
    let t = 1.0 / (1.0 + 0.327_591_1 * x.abs());
    let poly = t
        * (0.254_829_6
            + t * (-0.284_496_74 + t * (1.421_413_7 + t * (-1.453_152_1 + t * 1.061_405_4))));
    let r = 1.0 - poly * (-x * x).exp();
    if x < 0.0 { -r } else { r }
}

/// `x^e` with PyTorch's sign for a negative base and an integral exponent (`(-2)^3 = -8`);
/// NaN for a negative base and a fractional exponent. Twin of WGSL `pow_signed`.
pub fn pow_signed(x: f32, e: f32) -> f32 {
    if e == e.floor() {
        let r = x.abs().powf(e);
        if x < 0.0 && (e * 0.5).fract() != 0.0 {
            -r
        } else {
            r
        }
    } else {
        x.powf(e)
    }
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

fn b2f(b: bool) -> f32 {
    if b { 1.0 } else { 0.0 }
}

/// `1/√(2π)`, gelu's derivative.
const INV_SQRT_2PI: f32 = 0.398_942_3;

macro_rules! grad_slot {
    (-) => {
        None
    };
    ($v:ident) => {
        Some(Pw::$v)
    };
}

/// The table. Each row: `Variant(inputs; scalars) "name" => rust body, "wgsl body"` and, for
/// a differentiable forward op, `grad [row per input]` (`-`: no gradient for that input).
macro_rules! pointwise {
    ($(
        $(#[$m:meta])*
        $V:ident ( $($in:ident),+ ; $($par:ident),* ) $name:literal => $cpu:expr, $wgsl:literal
        $(, grad [$($g:tt),+])?;
    )*) => {
        /// An elementwise function (see the table in `src/ops/pointwise.rs`).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Pw {
            $( $(#[$m])* $V, )*
        }

        impl Pw {
            /// Every row of the table, in declaration order (= kernel op codes).
            pub const ALL: &'static [Pw] = &[$(Pw::$V),*];

            /// The op's name (errors, kernel labels).
            pub fn name(self) -> &'static str {
                match self { $(Pw::$V => $name,)* }
            }

            /// Number of tensor inputs.
            pub fn arity(self) -> usize {
                match self { $(Pw::$V => [$(stringify!($in)),+].len(),)* }
            }

            /// The input names of the row, as the WGSL body reads them.
            pub(crate) fn input_names(self) -> &'static [&'static str] {
                match self { $(Pw::$V => &[$(stringify!($in)),+],)* }
            }

            /// The WGSL body (an f32 expression).
            pub(crate) fn wgsl(self) -> &'static str {
                match self { $(Pw::$V => $wgsl,)* }
            }

            /// The gradient row for each input (`None`: not differentiable in that input);
            /// empty for ops without a gradient (comparisons, gradient rows).
            pub fn grads(self) -> &'static [Option<Pw>] {
                match self { $(Pw::$V => &[$($(grad_slot!($g)),+)?],)* }
            }

            /// The kernel's op code (the `OP` override of `shaders/pointwise.wgsl`).
            pub(crate) fn code(self) -> u32 {
                self as u32
            }

            /// Runs the op on the CPU: `out[i] = f(inputs at i)` over `walk`, one loop per
            /// op. `ins` has [`Pw::arity`] slices.
            pub(crate) fn run_cpu(self, a: f32, b: f32, ins: &[&[f32]], out: &mut [f32], walk: &Strided) {
                let _ = (a, b);
                match self {
                    $(Pw::$V => {
                        #[allow(unused_variables, clippy::redundant_closure_call)]
                        let f = |v: [f32; MAX_INPUTS]| -> f32 {
                            let [$($in,)+ ..] = v;
                            $(let $par = pw_scalar!($par, a, b);)*
                            $cpu
                        };
                        crate::cpu::pointwise::walk(ins, out, walk, f)
                    })*
                }
            }
        }
    };
}

macro_rules! pw_scalar {
    (a, $a:ident, $b:ident) => {
        $a
    };
    (b, $a:ident, $b:ident) => {
        $b
    };
}

pointwise! {
    // ---- unary -------------------------------------------------------------------------
    /// `-x`
    Neg(x;) "neg" => -x, "-x", grad [NegGrad];
    /// gradient of `neg`
    NegGrad(g, x, y;) "neg_grad" => -g, "-g";
    /// `|x|`
    Abs(x;) "abs" => x.abs(), "abs(x)", grad [AbsGrad];
    /// gradient of `abs` (0 at 0, as PyTorch)
    AbsGrad(g, x, y;) "abs_grad" => if x > 0.0 { g } else if x < 0.0 { -g } else { 0.0 },
        "select(select(0.0, -g, x < 0.0), g, x > 0.0)";
    /// `√x`
    Sqrt(x;) "sqrt" => x.sqrt(), "sqrt(x)", grad [SqrtGrad];
    /// gradient of `sqrt`: `g / (2y)`
    SqrtGrad(g, x, y;) "sqrt_grad" => 0.5 * g / y, "0.5 * g / y";
    /// `1/√x`
    Rsqrt(x;) "rsqrt" => 1.0 / x.sqrt(), "1.0 / sqrt(x)", grad [RsqrtGrad];
    /// gradient of `rsqrt`: `-g y³ / 2`
    RsqrtGrad(g, x, y;) "rsqrt_grad" => -0.5 * g * y * y * y, "-0.5 * g * y * y * y";
    /// `√(x + a)` (batch norm's standard deviation)
    SqrtEps(x; a) "sqrt_eps" => (x + a).sqrt(), "sqrt(x + a)", grad [SqrtGrad];
    /// `1/x`
    Recip(x;) "recip" => 1.0 / x, "1.0 / x", grad [RecipGrad];
    /// gradient of `recip`: `-g y²`
    RecipGrad(g, x, y;) "recip_grad" => -g * y * y, "-g * y * y";
    /// `eˣ`
    Exp(x;) "exp" => x.exp(), "exp(x)", grad [ExpGrad];
    /// gradient of `exp`: `g y`
    ExpGrad(g, x, y;) "exp_grad" => g * y, "g * y";
    /// `ln x`
    Log(x;) "log" => x.ln(), "log(x)", grad [LogGrad];
    /// gradient of `log`: `g / x`
    LogGrad(g, x, y;) "log_grad" => g / x, "g / x";
    /// `sin x`
    Sin(x;) "sin" => x.sin(), "sin(x)", grad [SinGrad];
    /// gradient of `sin`
    SinGrad(g, x, y;) "sin_grad" => g * x.cos(), "g * cos(x)";
    /// `cos x`
    Cos(x;) "cos" => x.cos(), "cos(x)", grad [CosGrad];
    /// gradient of `cos`
    CosGrad(g, x, y;) "cos_grad" => -g * x.sin(), "-g * sin(x)";
    /// `tanh x`
    Tanh(x;) "tanh" => x.tanh(), "tanh(x)", grad [TanhGrad];
    /// gradient of `tanh`: `g (1 - y²)`
    TanhGrad(g, x, y;) "tanh_grad" => g * (1.0 - y * y), "g * (1.0 - y * y)";
    /// `1 / (1 + e^-x)`
    Sigmoid(x;) "sigmoid" => sigmoid(x), "1.0 / (1.0 + exp(-x))", grad [SigmoidGrad];
    /// gradient of `sigmoid`: `g y (1 - y)`
    SigmoidGrad(g, x, y;) "sigmoid_grad" => g * y * (1.0 - y), "g * y * (1.0 - y)";
    /// `max(x, 0)`
    Relu(x;) "relu" => x.max(0.0), "max(x, 0.0)", grad [ReluGrad];
    /// gradient of `relu` (0 at 0, as PyTorch)
    ReluGrad(g, x, y;) "relu_grad" => if x > 0.0 { g } else { 0.0 }, "select(0.0, g, x > 0.0)";
    /// `x` where positive, else `a·x`
    LeakyRelu(x; a) "leaky_relu" => if x > 0.0 { x } else { a * x }, "select(a * x, x, x > 0.0)",
        grad [LeakyReluGrad];
    /// gradient of `leaky_relu`
    LeakyReluGrad(g, x, y; a) "leaky_relu_grad" => if x > 0.0 { g } else { a * g },
        "select(a * g, g, x > 0.0)";
    /// `x` where positive, else `a (eˣ - 1)` (ELU, Clevert et al. 2015)
    Elu(x; a) "elu" => if x > 0.0 { x } else { a * (x.exp() - 1.0) },
        "select(a * (exp(x) - 1.0), x, x > 0.0)", grad [EluGrad];
    /// gradient of `elu`: `g` where positive, else `g (y + a)` (`y + a = a eˣ`)
    EluGrad(g, x, y; a) "elu_grad" => if x > 0.0 { g } else { g * (y + a) },
        "select(g * (y + a), g, x > 0.0)";
    /// `x Φ(x)` with the exact normal CDF (PyTorch's default `gelu`)
    Gelu(x;) "gelu" => 0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2)),
        "0.5 * x * (1.0 + erf(x * 0.70710678))", grad [GeluGrad];
    /// gradient of `gelu`: `Φ(x) + x φ(x)`
    GeluGrad(g, x, y;) "gelu_grad" =>
        g * (0.5 * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
            + x * INV_SQRT_2PI * (-0.5 * x * x).exp()),
        "g * (0.5 * (1.0 + erf(x * 0.70710678)) + x * 0.3989423 * exp(-0.5 * x * x))";
    /// `x σ(x)` (swish)
    Silu(x;) "silu" => x * sigmoid(x), "x / (1.0 + exp(-x))", grad [SiluGrad];
    /// gradient of `silu`: `σ(x) (1 + x (1 - σ(x)))`
    SiluGrad(g, x, y;) "silu_grad" => { let s = sigmoid(x); g * s * (1.0 + x * (1.0 - s)) },
        "g * (1.0 / (1.0 + exp(-x))) * (1.0 + x * (1.0 - 1.0 / (1.0 + exp(-x))))";
    /// `ln(1 + eˣ)`, computed without overflow as `max(x, 0) + ln(1 + e^-|x|)`
    Softplus(x;) "softplus" => x.max(0.0) + (1.0 + (-x.abs()).exp()).ln(),
        "max(x, 0.0) + log(1.0 + exp(-abs(x)))", grad [SoftplusGrad];
    /// gradient of `softplus`: `g σ(x)`
    SoftplusGrad(g, x, y;) "softplus_grad" => g * sigmoid(x), "g / (1.0 + exp(-x))";
    /// `x` clamped into `[a, b]`
    Clamp(x; a, b) "clamp" => x.max(a).min(b), "min(max(x, a), b)", grad [ClampGrad];
    /// gradient of `clamp`: passes where `a ≤ x ≤ b` (PyTorch's convention)
    ClampGrad(g, x, y; a, b) "clamp_grad" => if x >= a && x <= b { g } else { 0.0 },
        "select(0.0, g, x >= a && x <= b)";
    /// `a·x`
    Scale(x; a) "scale" => a * x, "a * x", grad [ScaleGrad];
    /// gradient of `scale`
    ScaleGrad(g, x, y; a) "scale_grad" => a * g, "a * g";
    /// `x + a`
    AddScalar(x; a) "add_scalar" => x + a, "x + a", grad [IdentityGrad];
    /// `xᵃ` (integral exponents keep the sign of a negative base, as PyTorch)
    PowScalar(x; a) "pow_scalar" => pow_signed(x, a), "pow_signed(x, a)", grad [PowScalarGrad];
    /// gradient of `pow_scalar`: `g a x^(a-1)`
    PowScalarGrad(g, x, y; a) "pow_scalar_grad" => g * a * pow_signed(x, a - 1.0),
        "g * a * pow_signed(x, a - 1.0)";
    /// `x` (a copy: materialises a broadcast, a permutation, a dtype-preserving clone)
    Identity(x;) "identity" => x, "x", grad [IdentityGrad];
    /// gradient of a copy (also the gradient row of ops whose derivative is 1)
    IdentityGrad(g, x, y;) "identity_grad" => g, "g";
    // ---- binary, broadcasting -----------------------------------------------------------
    /// `x + y`
    Add(x, y;) "add" => x + y, "x + y", grad [IdentityGrad, IdentityGrad];
    /// `x - y`
    Sub(x, y;) "sub" => x - y, "x - y", grad [IdentityGrad, NegGrad];
    /// `x · y`
    Mul(x, y;) "mul" => x * y, "x * y", grad [MulGradX, MulGradY];
    /// gradient of `mul` for `x`
    MulGradX(g, x, y;) "mul_grad_x" => g * y, "g * y";
    /// gradient of `mul` for `y`
    MulGradY(g, x, y;) "mul_grad_y" => g * x, "g * x";
    /// `x / y`
    Div(x, y;) "div" => x / y, "x / y", grad [DivGradX, DivGradY];
    /// gradient of `div` for `x`
    DivGradX(g, x, y;) "div_grad_x" => g / y, "g / y";
    /// gradient of `div` for `y`
    DivGradY(g, x, y;) "div_grad_y" => -g * x / (y * y), "-g * x / (y * y)";
    /// `xʸ`
    Pow(x, y;) "pow" => pow_signed(x, y), "pow_signed(x, y)", grad [PowGradX, PowGradY];
    /// gradient of `pow` for the base
    PowGradX(g, x, y;) "pow_grad_x" => g * y * pow_signed(x, y - 1.0),
        "g * y * pow_signed(x, y - 1.0)";
    /// gradient of `pow` for the exponent: `g xʸ ln x` (0 where `x = 0`, as PyTorch)
    PowGradY(g, x, y;) "pow_grad_y" =>
        if x == 0.0 { 0.0 } else { g * pow_signed(x, y) * x.ln() },
        "select(g * pow_signed(x, y) * log(x), 0.0, x == 0.0)";
    /// `max(x, y)`
    Maximum(x, y;) "maximum" => x.max(y), "max(x, y)", grad [MaxGradX, MaxGradY];
    /// gradient of `maximum` for `x` (ties split the gradient in half, as PyTorch)
    MaxGradX(g, x, y;) "maximum_grad_x" => g * (b2f(x > y) + 0.5 * b2f(x == y)),
        "g * (select(0.0, 1.0, x > y) + select(0.0, 0.5, x == y))";
    /// gradient of `maximum` for `y`
    MaxGradY(g, x, y;) "maximum_grad_y" => g * (b2f(y > x) + 0.5 * b2f(x == y)),
        "g * (select(0.0, 1.0, y > x) + select(0.0, 0.5, x == y))";
    /// `min(x, y)`
    Minimum(x, y;) "minimum" => x.min(y), "min(x, y)", grad [MaxGradY, MaxGradX];
    /// `1` where `x = y`, else `0`
    Eq(x, y;) "eq" => b2f(x == y), "select(0.0, 1.0, x == y)";
    /// `1` where `x ≠ y`
    Ne(x, y;) "ne" => b2f(x != y), "select(0.0, 1.0, x != y)";
    /// `1` where `x < y`
    Lt(x, y;) "lt" => b2f(x < y), "select(0.0, 1.0, x < y)";
    /// `1` where `x ≤ y`
    Le(x, y;) "le" => b2f(x <= y), "select(0.0, 1.0, x <= y)";
    /// `1` where `x > y`
    Gt(x, y;) "gt" => b2f(x > y), "select(0.0, 1.0, x > y)";
    /// `1` where `x ≥ y`
    Ge(x, y;) "ge" => b2f(x >= y), "select(0.0, 1.0, x >= y)";
    /// `a` where the mask `y` is nonzero, else `x`
    MaskedFill(x, y; a) "masked_fill" => if y != 0.0 { a } else { x }, "select(x, a, y != 0.0)",
        grad [MaskedFillGrad, -];
    /// gradient of `masked_fill` for `x`
    MaskedFillGrad(g, x, y;) "masked_fill_grad" => if y != 0.0 { 0.0 } else { g },
        "select(g, 0.0, y != 0.0)";
    // ---- ternary -----------------------------------------------------------------------
    /// `y` where the condition `x` is nonzero, else `z`
    Where(x, y, z;) "where" => if x != 0.0 { y } else { z }, "select(z, y, x != 0.0)",
        grad [-, WhereGradY, WhereGradZ];
    /// gradient of `where` for the chosen-if-true input
    WhereGradY(g, x, y;) "where_grad_y" => if x != 0.0 { g } else { 0.0 },
        "select(0.0, g, x != 0.0)";
    /// gradient of `where` for the chosen-if-false input
    WhereGradZ(g, x, y;) "where_grad_z" => if x != 0.0 { 0.0 } else { g },
        "select(g, 0.0, x != 0.0)";
}

/// One pointwise op with its scalars.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PointwiseOp {
    /// The function.
    pub f: Pw,
    /// First scalar (`a` in the table).
    pub a: f32,
    /// Second scalar (`b`).
    pub b: f32,
}

impl PointwiseOp {
    /// `f` with scalars `a` and `b`.
    pub fn new(f: Pw, a: f32, b: f32) -> Self {
        PointwiseOp { f, a, b }
    }
}

/// The WGSL `switch` over every row, appended to `shaders/pointwise.wgsl`: case `k` binds the
/// row's input names to the kernel's `i0..i2` and returns its body.
pub(crate) fn wgsl_switch() -> String {
    let mut s = String::from(
        "\n// Generated from the table in src/ops/pointwise.rs: one case per row.\n\
         fn pw(i0: f32, i1: f32, i2: f32, a: f32, b: f32) -> f32 {\n    switch OP {\n",
    );
    for &f in Pw::ALL {
        s.push_str(&format!("        case {}u: {{ // {}\n", f.code(), f.name()));
        for (k, name) in f.input_names().iter().enumerate() {
            s.push_str(&format!("            let {name} = i{k};\n"));
        }
        s.push_str(&format!("            return {};\n        }}\n", f.wgsl()));
    }
    s.push_str("        default: { return 0.0; }\n    }\n}\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contiguous_operands_merge_into_one_dim() {
        let w = Strided::new(
            "t",
            &[2, 3, 4],
            &[
                contiguous_strides(&[2, 3, 4]),
                contiguous_strides(&[2, 3, 4]),
            ],
        )
        .unwrap();
        assert_eq!(
            (w.rank, w.dims[0], w.strides[0][0], w.strides[1][0]),
            (1, 24, 1, 1)
        );
        assert!(w.is_flat(2));
    }

    #[test]
    fn a_broadcast_row_keeps_two_dims() {
        let out = [2, 3, 4];
        let w = Strided::new(
            "t",
            &out,
            &[contiguous_strides(&out), broadcast_strides(&[4], &out)],
        )
        .unwrap();
        assert_eq!(w.rank, 2);
        assert_eq!(&w.dims[..2], &[6, 4]);
        assert_eq!(&w.strides[1][..2], &[0, 1]);
    }

    #[test]
    fn broadcast_shapes_follow_numpy() {
        assert_eq!(
            broadcast_shapes("t", &[2, 1, 4], &[3, 1]).unwrap(),
            [2, 3, 4]
        );
        let e = broadcast_shapes("t", &[2, 3], &[4])
            .unwrap_err()
            .to_string();
        assert!(e.contains("[2, 3]") && e.contains("[4]"), "{e}");
    }

    #[test]
    fn erf_and_signed_pow_match_known_values() {
        assert!((erf(0.5) - 0.520_499_9).abs() < 5e-7);
        assert!((erf(-1.5) + 0.966_105_1).abs() < 5e-7);
        assert_eq!(pow_signed(-2.0, 3.0), -8.0);
        assert_eq!(pow_signed(-2.0, 2.0), 4.0);
        assert!(pow_signed(-2.0, 0.5).is_nan());
    }

    #[test]
    fn every_row_has_a_gradient_row_per_input_or_none() {
        for &f in Pw::ALL {
            let g = f.grads();
            assert!(g.is_empty() || g.len() == f.arity(), "{}", f.name());
            for r in g.iter().flatten() {
                assert_eq!(r.arity(), 3, "{}: gradient rows read (g, x, y)", f.name());
            }
        }
    }
}
