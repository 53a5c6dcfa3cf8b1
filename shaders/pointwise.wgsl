// Every elementwise op: out[i] = pw(u at i, v at i, w at i) over a strided walk.
//
// The op bodies are not here: src/ops/pointwise.rs declares each op once (its Rust body, its
// WGSL body, its gradient rows) and appends the generated `fn pw` (a `switch OP`, one case per
// row) to this file. OP is an override constant, so each op is its own pipeline and the other
// cases fold away.
//
// Layout: the output is contiguous, row-major, `n` elements over `rank` dims (at most 8, after
// the host merged every run of dims that all operands walk contiguously). Input k is read at
// sum_d coord[d] * s_k[d]: stride 0 broadcasts, permuted strides transpose. The contiguous
// case is rank 1 with unit strides: one trip of the loop.
// One thread per output element, 256 per workgroup; the grid is 2-D past 65,535 workgroups,
// so the flat index is gid.x + gid.y * (num_workgroups.x * 256).
// Bindings: 1 = out (read_write), 2, 3, 4 = inputs u, v, w (an op with fewer inputs binds its
// first input again in the unused slots). Computation is f32 for every T.

struct Params {
    n: u32,
    rank: u32,
    a: f32,
    b: f32,
    dims: array<vec4<u32>, 2>,
    s0: array<vec4<u32>, 2>,
    s1: array<vec4<u32>, 2>,
    s2: array<vec4<u32>, 2>,
}

override OP: u32 = 0u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<T>;
@group(0) @binding(2) var<storage, read> u: array<T>;
@group(0) @binding(3) var<storage, read> v: array<T>;
@group(0) @binding(4) var<storage, read> w: array<T>;

// Abramowitz & Stegun 7.1.26 (max error 1.5e-7); twin of `erf` in src/ops/pointwise.rs.
fn erf(x: f32) -> f32 {
    let t = 1.0 / (1.0 + 0.3275911 * abs(x));
    let poly = t * (0.2548296 + t * (-0.28449674 + t * (1.4214137 + t * (-1.4531521 + t * 1.0614054))));
    let r = 1.0 - poly * exp(-x * x);
    return select(r, -r, x < 0.0);
}

// x^e keeping the sign of a negative base for integral e; twin of `pow_signed` in Rust.
fn pow_signed(x: f32, e: f32) -> f32 {
    if (e == floor(e)) {
        let r = pow(abs(x), e);
        return select(r, -r, x < 0.0 && fract(e * 0.5) != 0.0);
    }
    return pow(x, e);
}

@compute @workgroup_size(256)
fn pointwise(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= p.n) {
        return;
    }
    var rem = i;
    var o0 = 0u;
    var o1 = 0u;
    var o2 = 0u;
    for (var d = p.rank; d > 0u; d--) {
        let k = d - 1u;
        let size = p.dims[k / 4u][k % 4u];
        let c = rem % size;
        rem = rem / size;
        o0 += c * p.s0[k / 4u][k % 4u];
        o1 += c * p.s1[k / 4u][k % 4u];
        o2 += c * p.s2[k / 4u][k % 4u];
    }
    out[i] = T(pw(f32(u[o0]), f32(v[o1]), f32(w[o2]), p.a, p.b));
}
