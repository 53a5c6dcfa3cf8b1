// Elementwise kernels over flat arrays of `n` elements (any shape, row-major).
//
// One thread per element, 256 per workgroup; the dispatch is 2-D when n/256 exceeds the
// per-dimension limit, so the flat index is gid.x + gid.y * (num_workgroups.x * 256).
// Bindings: 1 = out (read_write), 2 = x, 3 = y. Each entry uses a prefix of them.

struct Params {
    n: u32,
    alpha: f32,
    beta: f32,
    seed: u32,
    offset: u32,
    _p0: u32,
    _p1: u32,
    _p2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<T>;
@group(0) @binding(2) var<storage, read> x: array<T>;
@group(0) @binding(3) var<storage, read> y: array<T>;

fn flat(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * 256u;
}

@compute @workgroup_size(256)
fn fill(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if (i < p.n) {
        out[i] = T(p.alpha);
    }
}

@compute @workgroup_size(256)
fn copy(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if (i < p.n) {
        out[i] = x[i];
    }
}

@compute @workgroup_size(256)
fn scale(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if (i < p.n) {
        out[i] = T(p.alpha * f32(x[i]));
    }
}

// out += alpha * x (in place).
@compute @workgroup_size(256)
fn axpy(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if (i < p.n) {
        out[i] = T(f32(out[i]) + p.alpha * f32(x[i]));
    }
}

@compute @workgroup_size(256)
fn relu(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if (i < p.n) {
        out[i] = max(x[i], T(0.0));
    }
}

@compute @workgroup_size(256)
fn sigmoid(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if (i < p.n) {
        out[i] = T(1.0 / (1.0 + exp(-f32(x[i]))));
    }
}

@compute @workgroup_size(256)
fn add(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if (i < p.n) {
        out[i] = x[i] + y[i];
    }
}

@compute @workgroup_size(256)
fn sub(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if (i < p.n) {
        out[i] = x[i] - y[i];
    }
}

@compute @workgroup_size(256)
fn mul(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if (i < p.n) {
        out[i] = x[i] * y[i];
    }
}

@compute @workgroup_size(256)
fn recip(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if (i < p.n) {
        out[i] = T(1.0 / f32(x[i]));
    }
}

// sqrt(x + alpha): the standard deviation from a variance in batch normalisation.
@compute @workgroup_size(256)
fn sqrt_eps(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if (i < p.n) {
        out[i] = T(sqrt(f32(x[i]) + p.alpha));
    }
}

// x = dy, y = forward input: dx = dy * (x > 0).
@compute @workgroup_size(256)
fn relu_bwd(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if (i < p.n) {
        out[i] = select(T(0.0), x[i], y[i] > T(0.0));
    }
}

// tanh with the argument clamped to ±15, where tanh is ±1 in f32 already: some drivers build
// tanh from exp and return NaN for large |x|.
@compute @workgroup_size(256)
fn tanh_(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if (i < p.n) {
        out[i] = T(tanh(clamp(f32(x[i]), -15.0, 15.0)));
    }
}

// alpha = the slope for x < 0.
@compute @workgroup_size(256)
fn leaky_relu(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if (i < p.n) {
        let v = f32(x[i]);
        out[i] = T(select(p.alpha * v, v, v > 0.0));
    }
}

@compute @workgroup_size(256)
fn exp_(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if (i < p.n) {
        out[i] = T(exp(f32(x[i])));
    }
}

@compute @workgroup_size(256)
fn log_(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if (i < p.n) {
        out[i] = T(log(f32(x[i])));
    }
}

// log(1 + e^x), stably: max(x, 0) + log(1 + e^-|x|).
@compute @workgroup_size(256)
fn softplus(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if (i < p.n) {
        let v = f32(x[i]);
        out[i] = T(max(v, 0.0) + log(1.0 + exp(-abs(v))));
    }
}

// x = dy, y = forward output: dx = dy * (1 - y²).
@compute @workgroup_size(256)
fn tanh_bwd(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if (i < p.n) {
        let t = f32(y[i]);
        out[i] = T(f32(x[i]) * (1.0 - t * t));
    }
}

// x = dy, y = forward input, alpha = the negative slope: dx = dy * (y > 0 ? 1 : alpha).
@compute @workgroup_size(256)
fn leaky_relu_bwd(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if (i < p.n) {
        out[i] = T(f32(x[i]) * select(p.alpha, 1.0, y[i] > T(0.0)));
    }
}

// x = dy, y = forward output: dx = dy * y * (1 - y).
@compute @workgroup_size(256)
fn sigmoid_bwd(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if (i < p.n) {
        let s = f32(y[i]);
        out[i] = T(f32(x[i]) * s * (1.0 - s));
    }
}

// Chris Wellons' lowbias32; src/rng.rs has the same function for the CPU reference.
fn hash_u32(v: u32) -> u32 {
    var h = v;
    h ^= h >> 16u;
    h *= 0x7feb352du;
    h ^= h >> 15u;
    h *= 0x846ca68bu;
    h ^= h >> 16u;
    return h;
}

// Dropout mask: alpha = drop ratio, beta = value of a kept element. u has 24 exact bits.
@compute @workgroup_size(256)
fn dropout_mask(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if (i < p.n) {
        let h = hash_u32((p.offset + i) + hash_u32(p.seed));
        let u = f32(h >> 8u) * (1.0 / 16777216.0);
        out[i] = select(T(0.0), T(p.beta), u >= p.alpha);
    }
}

// Dropout applied: out = x * mask with dropout_mask's mask (same hash, same T arithmetic as
// x * mask), without storing the mask. The backward is the same kernel on the gradient.
@compute @workgroup_size(256)
fn dropout_apply(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if (i < p.n) {
        let h = hash_u32((p.offset + i) + hash_u32(p.seed));
        let u = f32(h >> 8u) * (1.0 / 16777216.0);
        out[i] = x[i] * select(T(0.0), T(p.beta), u >= p.alpha);
    }
}
