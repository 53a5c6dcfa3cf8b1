// Elementwise kernels over flat arrays of `n` elements (any shape, row-major), and the random
// draws of the counter hash: fills, dropout masks, categorical samples (one thread per row).
//
// One thread per element, 256 per workgroup; the dispatch is 2-D when n/256 exceeds the
// per-dimension limit, so the flat index is gid.x + gid.y * (num_workgroups.x * 256).
// Bindings: 1 = out (read_write), 2 = x, 3 = y, 4 = picks (u32, read_write).

struct Params {
    n: u32,
    alpha: f32,
    beta: f32,
    seed: u32,
    offset: u32,
    cols: u32,
    _p1: u32,
    _p2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<T>;
@group(0) @binding(2) var<storage, read> x: array<T>;
@group(0) @binding(3) var<storage, read> y: array<T>;
@group(0) @binding(4) var<storage, read_write> picks: array<u32>;

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

// out += alpha * x (in place).
@compute @workgroup_size(256)
fn axpy(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if (i < p.n) {
        out[i] = T(f32(out[i]) + p.alpha * f32(x[i]));
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

// Random fills (src/rng.rs computes the same f32 expressions): element i of a uniform fill
// is alpha + (beta - alpha) * u(offset + i); of a normal fill, alpha + beta * z with z by
// Box–Muller on the draws offset + 2i and offset + 2i + 1 (u1 in (0, 1], so ln is finite).
fn counter_uniform(k: u32) -> f32 {
    return f32(hash_u32(k + hash_u32(p.seed)) >> 8u) * (1.0 / 16777216.0);
}

@compute @workgroup_size(256)
fn fill_uniform(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if (i < p.n) {
        out[i] = T(p.alpha + (p.beta - p.alpha) * counter_uniform(p.offset + i));
    }
}

@compute @workgroup_size(256)
fn fill_normal(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if (i < p.n) {
        let k = p.offset + 2u * i;
        let u1 = 1.0 - counter_uniform(k);
        let u2 = counter_uniform(k + 1u);
        let z = sqrt(-2.0 * log(u1)) * cos(6.2831855 * u2);
        out[i] = T(p.alpha + p.beta * z);
    }
}

// Categorical draws from logits x [n rows, cols]: row r picks the first k whose running sum
// of exp(x - max) exceeds u(offset + r) * total, reading the row in order as the CPU reference
// does (src/cpu/data.rs); the last k when rounding leaves none. One thread per row.
@compute @workgroup_size(256)
fn categorical(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let r = flat(gid, nwg);
    if (r >= p.n) {
        return;
    }
    let base = r * p.cols;
    var m = f32(x[base]);
    for (var k = 1u; k < p.cols; k++) {
        m = max(m, f32(x[base + k]));
    }
    var total = 0.0;
    for (var k = 0u; k < p.cols; k++) {
        total += exp(f32(x[base + k]) - m);
    }
    let t = counter_uniform(p.offset + r) * total;
    var acc = 0.0;
    var pick = p.cols - 1u;
    for (var k = 0u; k < p.cols; k++) {
        acc += exp(f32(x[base + k]) - m);
        if (acc > t) {
            pick = k;
            break;
        }
    }
    picks[r] = pick;
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
