// Optimizer updates, one thread per parameter element, the formulas of the book's
// common/optimizer.py (src/cpu/mod.rs `optim_update` is the reference, same order of ops).
// The gradient used is g / scale + wd * w (L2 weight decay; wd = 0 for biases), where scale
// is the loss scale of mixed-precision training (1 otherwise); while the scaler's non-finite
// flag is set the update is skipped entirely (see scaler.wgsl).
//
// KIND (override constant) picks the rule: 0 sgd, 1 momentum, 2 nesterov, 3 adagrad,
// 4 rmsprop, 5 adam, 6 adamw; STATES is its number of state tensors (0-2), so only those are
// written (a rule without state gets its parameter bound in the unused state slots).
// `update`: one tensor. Bindings: 1 = w (read_write), 2 = g, 3 = s1, 4 = s2 (read_write),
// 5 = scaler state [scale bits, flag, clean steps, skipped steps].
// `update_multi`: up to 7 tensors in one dispatch (29 storage bindings: within Metal's 31 and
// lavapipe's 32) (a multi-tensor optimizer step): thread i
// belongs to the slot whose element range [start, next start) holds it; slot j's tensors are
// bound at 10 + 4j (w), 11 + 4j (g), 12 + 4j (s1), 13 + 4j (s2). Unused slots repeat slot 0.

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
    // update_multi: tensors in this dispatch
    count: u32,
    _p0: u32,
    // update_multi: first element of each slot, and each slot's weight decay (7 used)
    starts: array<vec4<u32>, 2>,
    wds: array<vec4<f32>, 2>,
}

override KIND: u32 = 0u;
override STATES: u32 = 0u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> w: array<f32>;
@group(0) @binding(2) var<storage, read> g: array<f32>;
@group(0) @binding(3) var<storage, read_write> s1: array<f32>;
@group(0) @binding(4) var<storage, read_write> s2: array<f32>;
@group(0) @binding(5) var<storage, read> guard: array<u32>;

fn index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * 256u;
}

fn skipped() -> bool {
    return guard[1] != 0u;
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

// One element's update: parameter w, raw gradient gr, states a and b, weight decay wd.
// Returns (new w, new a, new b).
fn rule(w0: f32, gr: f32, a: f32, b: f32, wd: f32) -> vec3<f32> {
    let scaled = gr / bitcast<f32>(guard[0]);
    let gi = scaled + wd * w0;
    switch KIND {
        case 0u: {
            return vec3<f32>(w0 - p.lr * gi, a, b);
        }
        case 1u: {
            let v = p.beta1 * a - p.lr * gi;
            return vec3<f32>(w0 + v, v, b);
        }
        case 2u: {
            let v = p.beta1 * a - p.lr * gi;
            return vec3<f32>(w0 + p.beta1 * p.beta1 * v - (1.0 + p.beta1) * p.lr * gi, v, b);
        }
        case 3u: {
            let h = a + gi * gi;
            return vec3<f32>(w0 - p.lr * gi / (sqrt(h) + p.eps), h, b);
        }
        case 4u: {
            let h = p.beta1 * a + (1.0 - p.beta1) * gi * gi;
            return vec3<f32>(w0 - p.lr * gi / (sqrt(h) + p.eps), h, b);
        }
        case 5u: {
            let m = a + (1.0 - p.beta1) * (gi - a);
            let v = b + (1.0 - p.beta2) * (gi * gi - b);
            return vec3<f32>(w0 - adam_lr_t() * m / (sqrt(v) + p.eps), m, v);
        }
        default: {
            // AdamW: the moments see the plain gradient; the decay shrinks w by lr·λ first.
            let m = a + (1.0 - p.beta1) * (scaled - a);
            let v = b + (1.0 - p.beta2) * (scaled * scaled - b);
            return vec3<f32>(w0 * (1.0 - p.lr * wd) - adam_lr_t() * m / (sqrt(v) + p.eps), m, v);
        }
    }
}

@compute @workgroup_size(256)
fn update(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= p.n || skipped()) {
        return;
    }
    let r = rule(w[i], g[i], s1[i], s2[i], p.wd);
    w[i] = r.x;
    if (STATES >= 1u) {
        s1[i] = r.y;
    }
    if (STATES >= 2u) {
        s2[i] = r.z;
    }
}

@group(0) @binding(10) var<storage, read_write> w0: array<f32>;
@group(0) @binding(11) var<storage, read> g0: array<f32>;
@group(0) @binding(12) var<storage, read_write> a0: array<f32>;
@group(0) @binding(13) var<storage, read_write> b0: array<f32>;
@group(0) @binding(14) var<storage, read_write> w1: array<f32>;
@group(0) @binding(15) var<storage, read> g1: array<f32>;
@group(0) @binding(16) var<storage, read_write> a1: array<f32>;
@group(0) @binding(17) var<storage, read_write> b1: array<f32>;
@group(0) @binding(18) var<storage, read_write> w2: array<f32>;
@group(0) @binding(19) var<storage, read> g2: array<f32>;
@group(0) @binding(20) var<storage, read_write> a2: array<f32>;
@group(0) @binding(21) var<storage, read_write> b2: array<f32>;
@group(0) @binding(22) var<storage, read_write> w3: array<f32>;
@group(0) @binding(23) var<storage, read> g3: array<f32>;
@group(0) @binding(24) var<storage, read_write> a3: array<f32>;
@group(0) @binding(25) var<storage, read_write> b3: array<f32>;
@group(0) @binding(26) var<storage, read_write> w4: array<f32>;
@group(0) @binding(27) var<storage, read> g4: array<f32>;
@group(0) @binding(28) var<storage, read_write> a4: array<f32>;
@group(0) @binding(29) var<storage, read_write> b4: array<f32>;
@group(0) @binding(30) var<storage, read_write> w5: array<f32>;
@group(0) @binding(31) var<storage, read> g5: array<f32>;
@group(0) @binding(32) var<storage, read_write> a5: array<f32>;
@group(0) @binding(33) var<storage, read_write> b5: array<f32>;
@group(0) @binding(34) var<storage, read_write> w6: array<f32>;
@group(0) @binding(35) var<storage, read> g6: array<f32>;
@group(0) @binding(36) var<storage, read_write> a6: array<f32>;
@group(0) @binding(37) var<storage, read_write> b6: array<f32>;

@compute @workgroup_size(256)
fn update_multi(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= p.n || skipped()) {
        return;
    }
    var slot = 0u;
    for (var j = 1u; j < p.count; j++) {
        if (i >= p.starts[j / 4u][j % 4u]) {
            slot = j;
        }
    }
    let e = i - p.starts[slot / 4u][slot % 4u];
    let wd = p.wds[slot / 4u][slot % 4u];
    var v = vec4<f32>(0.0);
    switch slot {
        case 0u: {
            v = vec4<f32>(w0[e], g0[e], a0[e], b0[e]);
        }
        case 1u: {
            v = vec4<f32>(w1[e], g1[e], a1[e], b1[e]);
        }
        case 2u: {
            v = vec4<f32>(w2[e], g2[e], a2[e], b2[e]);
        }
        case 3u: {
            v = vec4<f32>(w3[e], g3[e], a3[e], b3[e]);
        }
        case 4u: {
            v = vec4<f32>(w4[e], g4[e], a4[e], b4[e]);
        }
        case 5u: {
            v = vec4<f32>(w5[e], g5[e], a5[e], b5[e]);
        }
        default: {
            v = vec4<f32>(w6[e], g6[e], a6[e], b6[e]);
        }
    }
    let r = rule(v.x, v.y, v.z, v.w, wd);
    switch slot {
        case 0u: {
            w0[e] = r.x;
            if (STATES >= 1u) {
                a0[e] = r.y;
            }
            if (STATES >= 2u) {
                b0[e] = r.z;
            }
        }
        case 1u: {
            w1[e] = r.x;
            if (STATES >= 1u) {
                a1[e] = r.y;
            }
            if (STATES >= 2u) {
                b1[e] = r.z;
            }
        }
        case 2u: {
            w2[e] = r.x;
            if (STATES >= 1u) {
                a2[e] = r.y;
            }
            if (STATES >= 2u) {
                b2[e] = r.z;
            }
        }
        case 3u: {
            w3[e] = r.x;
            if (STATES >= 1u) {
                a3[e] = r.y;
            }
            if (STATES >= 2u) {
                b3[e] = r.z;
            }
        }
        case 4u: {
            w4[e] = r.x;
            if (STATES >= 1u) {
                a4[e] = r.y;
            }
            if (STATES >= 2u) {
                b4[e] = r.z;
            }
        }
        case 5u: {
            w5[e] = r.x;
            if (STATES >= 1u) {
                a5[e] = r.y;
            }
            if (STATES >= 2u) {
                b5[e] = r.z;
            }
        }
        default: {
            w6[e] = r.x;
            if (STATES >= 1u) {
                a6[e] = r.y;
            }
            if (STATES >= 2u) {
                b6[e] = r.z;
            }
        }
    }
}
