// The pointwise work of one time step of a recurrent cell, forward and backward, fused into
// one kernel each (the projections are GEMMs around it). One thread per state element
// e = b * H + j of the step's [B, H] state. Gate order and formulas as PyTorch's:
//   RNN:  h = tanh(xw + hh + b)
//   GRU:  r = σ(xw_r + hh_r + b_r), z = σ(xw_z + hh_z + b_z), hn = hh_n + b_n,
//         n = tanh(xw_n + r * hn), h = (1 - z) * n + z * h_prev
//   LSTM: i, f, o = σ(…), g = tanh(…), c = f * c_prev + i * g, h = o * tanh(c)
// Saved for the backward (act, S blocks of H per batch row): RNN h; GRU r, z, n, hn;
// LSTM i, f, g, o. Buffer roles and shapes are those of `RnnCellFwd` / `RnnCellBwd` in
// src/ops/mod.rs (the CPU reference is src/cpu/rnn.rs). Math in f32.
// Forward bindings 1–8, backward 10–18 (distinct, so both sets live in one module).

struct Params {
    steps: u32,
    batch: u32,
    hidden: u32,
    t: u32,
}

@group(0) @binding(0) var<uniform> p: Params;

// Forward.
@group(0) @binding(1) var<storage, read> xw: array<T>;
@group(0) @binding(2) var<storage, read> hh: array<T>;
@group(0) @binding(3) var<storage, read> bias: array<T>;
@group(0) @binding(4) var<storage, read_write> hprev: array<T>;
@group(0) @binding(5) var<storage, read_write> cs: array<T>;
@group(0) @binding(6) var<storage, read_write> act: array<T>;
@group(0) @binding(7) var<storage, read_write> out: array<T>;
@group(0) @binding(8) var<storage, read_write> h: array<T>;

// Backward.
@group(0) @binding(10) var<storage, read> bact: array<T>;
@group(0) @binding(11) var<storage, read> bhprev: array<T>;
@group(0) @binding(12) var<storage, read> bcs: array<T>;
@group(0) @binding(13) var<storage, read> gout: array<T>;
@group(0) @binding(14) var<storage, read_write> dh: array<T>;
@group(0) @binding(15) var<storage, read_write> dc: array<T>;
@group(0) @binding(16) var<storage, read_write> dxw: array<T>;
@group(0) @binding(17) var<storage, read_write> dhh: array<T>;
@group(0) @binding(18) var<storage, read_write> dhh_all: array<T>;

fn sigmoid(x: f32) -> f32 {
    return 1.0 / (1.0 + exp(-x));
}

// tanh through exp, stable for large |x| (WGSL's tanh may overflow to NaN on some drivers).
fn tanh_(x: f32) -> f32 {
    let e = exp(-2.0 * abs(x));
    return sign(x) * (1.0 - e) / (1.0 + e);
}

// The element this thread handles (2-D grid past 65,535 workgroups); false when out of range.
fn element(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * 256u;
}

// The pre-activation of gate k (forward).
fn pre(row: u32, k: u32, j: u32) -> f32 {
    let c = k * p.hidden + j;
    return f32(xw[p.t * p.batch * (p.hidden * gates()) + row + c]) + f32(hh[row + c]) + f32(bias[c]);
}

override GATES: u32 = 1u;

fn gates() -> u32 {
    return GATES;
}

// The new state, written where RnnCellFwd says.
fn store_h(e: u32, v: f32) {
    let n = p.batch * p.hidden;
    out[p.t * n + e] = T(v);
    h[e] = T(v);
    if (p.t + 1u < p.steps) {
        hprev[(p.t + 1u) * n + e] = T(v);
    }
}

@compute @workgroup_size(256)
fn rnn_tanh_fwd(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = element(gid, nwg);
    if (e >= p.batch * p.hidden) {
        return;
    }
    let b = e / p.hidden;
    let j = e % p.hidden;
    let v = tanh_(pre(b * p.hidden, 0u, j));
    act[p.t * p.batch * p.hidden + e] = T(v);
    store_h(e, v);
}

@compute @workgroup_size(256)
fn gru_fwd(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = element(gid, nwg);
    if (e >= p.batch * p.hidden) {
        return;
    }
    let hid = p.hidden;
    let b = e / hid;
    let j = e % hid;
    let row = b * 3u * hid;
    let r = sigmoid(pre(row, 0u, j));
    let z = sigmoid(pre(row, 1u, j));
    let hn = f32(hh[row + 2u * hid + j]) + f32(bias[2u * hid + j]);
    let nn = tanh_(f32(xw[p.t * p.batch * 3u * hid + row + 2u * hid + j]) + r * hn);
    let a = p.t * p.batch * 4u * hid + b * 4u * hid + j;
    act[a] = T(r);
    act[a + hid] = T(z);
    act[a + 2u * hid] = T(nn);
    act[a + 3u * hid] = T(hn);
    let n = p.batch * hid;
    store_h(e, (1.0 - z) * nn + z * f32(hprev[p.t * n + e]));
}

@compute @workgroup_size(256)
fn lstm_fwd(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = element(gid, nwg);
    if (e >= p.batch * p.hidden) {
        return;
    }
    let hid = p.hidden;
    let b = e / hid;
    let j = e % hid;
    let row = b * 4u * hid;
    let ig = sigmoid(pre(row, 0u, j));
    let fg = sigmoid(pre(row, 1u, j));
    let gg = tanh_(pre(row, 2u, j));
    let og = sigmoid(pre(row, 3u, j));
    let a = p.t * p.batch * 4u * hid + row + j;
    act[a] = T(ig);
    act[a + hid] = T(fg);
    act[a + 2u * hid] = T(gg);
    act[a + 3u * hid] = T(og);
    let n = p.batch * hid;
    let c = fg * f32(cs[p.t * n + e]) + ig * gg;
    cs[(p.t + 1u) * n + e] = T(c);
    if (p.t + 1u == p.steps) {
        out[p.steps * n + e] = T(c);
    }
    store_h(e, og * tanh_(c));
}

// dh_t: the output's gradient at t plus, except at the last step, the recurrent one.
fn dh_in(e: u32) -> f32 {
    let n = p.batch * p.hidden;
    var d = f32(gout[p.t * n + e]);
    if (p.t + 1u < p.steps) {
        d += f32(dh[e]);
    }
    return d;
}

@compute @workgroup_size(256)
fn rnn_tanh_bwd(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = element(gid, nwg);
    if (e >= p.batch * p.hidden) {
        return;
    }
    let v = f32(bact[p.t * p.batch * p.hidden + e]);
    let d = dh_in(e) * (1.0 - v * v);
    dxw[p.t * p.batch * p.hidden + e] = T(d);
    dhh[e] = T(d);
}

@compute @workgroup_size(256)
fn gru_bwd(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = element(gid, nwg);
    if (e >= p.batch * p.hidden) {
        return;
    }
    let hid = p.hidden;
    let n = p.batch * hid;
    let b = e / hid;
    let j = e % hid;
    let a = p.t * p.batch * 4u * hid + b * 4u * hid + j;
    let r = f32(bact[a]);
    let z = f32(bact[a + hid]);
    let nn = f32(bact[a + 2u * hid]);
    let hn = f32(bact[a + 3u * hid]);
    let d = dh_in(e);
    let dn = d * (1.0 - z) * (1.0 - nn * nn);
    let dz = d * (f32(bhprev[p.t * n + e]) - nn) * z * (1.0 - z);
    let dr = dn * hn * r * (1.0 - r);
    let row = b * 3u * hid + j;
    let x = p.t * p.batch * 3u * hid + row;
    dxw[x] = T(dr);
    dxw[x + hid] = T(dz);
    dxw[x + 2u * hid] = T(dn);
    dhh[row] = T(dr);
    dhh[row + hid] = T(dz);
    dhh[row + 2u * hid] = T(dn * r);
    dhh_all[x] = T(dr);
    dhh_all[x + hid] = T(dz);
    dhh_all[x + 2u * hid] = T(dn * r);
    dh[e] = T(d * z);
}

@compute @workgroup_size(256)
fn lstm_bwd(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = element(gid, nwg);
    if (e >= p.batch * p.hidden) {
        return;
    }
    let hid = p.hidden;
    let n = p.batch * hid;
    let b = e / hid;
    let j = e % hid;
    let row = b * 4u * hid + j;
    let a = p.t * p.batch * 4u * hid + row;
    let ig = f32(bact[a]);
    let fg = f32(bact[a + hid]);
    let gg = f32(bact[a + 2u * hid]);
    let og = f32(bact[a + 3u * hid]);
    let tc = tanh_(f32(bcs[(p.t + 1u) * n + e]));
    let d = dh_in(e);
    var dc_in = f32(gout[p.steps * n + e]);
    if (p.t + 1u < p.steps) {
        dc_in = f32(dc[e]);
    }
    let dct = dc_in + d * og * (1.0 - tc * tc);
    let di = dct * gg * ig * (1.0 - ig);
    let df = dct * f32(bcs[p.t * n + e]) * fg * (1.0 - fg);
    let dg = dct * ig * (1.0 - gg * gg);
    let do_ = d * tc * og * (1.0 - og);
    dxw[a] = T(di);
    dxw[a + hid] = T(df);
    dxw[a + 2u * hid] = T(dg);
    dxw[a + 3u * hid] = T(do_);
    dhh[row] = T(di);
    dhh[row + hid] = T(df);
    dhh[row + 2u * hid] = T(dg);
    dhh[row + 3u * hid] = T(do_);
    dc[e] = T(dct * fg);
}
