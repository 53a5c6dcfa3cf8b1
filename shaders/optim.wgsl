// Optimizer updates, one thread per parameter element, the formulas of the book's
// common/optimizer.py (src/cpu/mod.rs `optim_update` is the reference, same order of ops).
// The gradient used is g / scale + wd * w (L2 weight decay; wd = 0 for biases), where scale
// is the loss scale of mixed-precision training (1 otherwise); while the scaler's non-finite
// flag is set the update is skipped entirely (see scaler.wgsl).
// Bindings: 1 = w (read_write), 2 = g, 3 = s1 (read_write), 4 = s2 (read_write),
// 5 = scaler state [scale bits, flag, clean steps, skipped steps].

struct Params {
    n: u32,
    lr: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    wd: f32,
    lr_t: f32,
    t: u32,
    ln_beta1: f32,
    ln_beta2: f32,
    _p0: u32,
    _p1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> w: array<f32>;
@group(0) @binding(2) var<storage, read> g: array<f32>;
@group(0) @binding(3) var<storage, read_write> s1: array<f32>;
@group(0) @binding(4) var<storage, read_write> s2: array<f32>;
@group(0) @binding(5) var<storage, read> guard: array<u32>;

fn index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * 256u;
}

fn grad(i: u32) -> f32 {
    return g[i] / bitcast<f32>(guard[0]) + p.wd * w[i];
}

fn skipped() -> bool {
    return guard[1] != 0u;
}

@compute @workgroup_size(256)
fn sgd(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i < p.n && !skipped()) {
        w[i] -= p.lr * grad(i);
    }
}

@compute @workgroup_size(256)
fn momentum(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i < p.n && !skipped()) {
        let gi = grad(i);
        let v = p.beta1 * s1[i] - p.lr * gi;
        s1[i] = v;
        w[i] += v;
    }
}

@compute @workgroup_size(256)
fn nesterov(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i < p.n && !skipped()) {
        let gi = grad(i);
        let v = p.beta1 * s1[i] - p.lr * gi;
        s1[i] = v;
        w[i] += p.beta1 * p.beta1 * v - (1.0 + p.beta1) * p.lr * gi;
    }
}

@compute @workgroup_size(256)
fn adagrad(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i < p.n && !skipped()) {
        let gi = grad(i);
        let h = s1[i] + gi * gi;
        s1[i] = h;
        w[i] -= p.lr * gi / (sqrt(h) + p.eps);
    }
}

@compute @workgroup_size(256)
fn rmsprop(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i < p.n && !skipped()) {
        let gi = grad(i);
        let h = p.beta1 * s1[i] + (1.0 - p.beta1) * gi * gi;
        s1[i] = h;
        w[i] -= p.lr * gi / (sqrt(h) + p.eps);
    }
}

// 1 - e^x for x <= 0 without the cancellation of 1 - exp(x) near 0 (where 1 - beta2^t lives
// for small t): a Taylor series of -expm1(x) for x > -0.5. As `one_minus_exp` in src/ops.rs.
fn one_minus_exp(x: f32) -> f32 {
    if (x > -0.5) {
        var term = x;
        var sum = x;
        for (var k = 2u; k < 12u; k++) {
            term *= x / f32(k);
            sum += term;
        }
        return -sum;
    }
    return 1.0 - exp(x);
}

// Adam's bias-corrected rate. Steps the loss scaler skipped (guard[3]) changed nothing, so
// t counts only the updates taken; with none skipped, the host's f64 value.
fn adam_lr_t() -> f32 {
    let skipped_steps = guard[3];
    if (skipped_steps == 0u) {
        return p.lr_t;
    }
    let t = f32(max(p.t - min(skipped_steps, p.t), 1u));
    return p.lr * sqrt(one_minus_exp(t * p.ln_beta2)) / one_minus_exp(t * p.ln_beta1);
}

// AdamW: the moments see the plain gradient; the decay shrinks w by lr·λ first.
@compute @workgroup_size(256)
fn adamw(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i < p.n && !skipped()) {
        let gi = g[i] / bitcast<f32>(guard[0]);
        let m = s1[i] + (1.0 - p.beta1) * (gi - s1[i]);
        let v = s2[i] + (1.0 - p.beta2) * (gi * gi - s2[i]);
        s1[i] = m;
        s2[i] = v;
        w[i] = w[i] * (1.0 - p.lr * p.wd) - adam_lr_t() * m / (sqrt(v) + p.eps);
    }
}

@compute @workgroup_size(256)
fn adam(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i < p.n && !skipped()) {
        let gi = grad(i);
        let m = s1[i] + (1.0 - p.beta1) * (gi - s1[i]);
        let v = s2[i] + (1.0 - p.beta2) * (gi * gi - s2[i]);
        s1[i] = m;
        s2[i] = v;
        w[i] -= adam_lr_t() * m / (sqrt(v) + p.eps);
    }
}
