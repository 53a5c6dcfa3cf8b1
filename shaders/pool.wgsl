// Max-pooling over an NCHW input with its argmax, and the backward.
//
// max_pool:     one thread per output element; scans its window in (ky, kx) order and keeps
//               the first maximum (as the book's np.argmax). Padded positions never win.
//               idx holds the flat input index of the winner.
// max_pool_bwd: one thread per input element; gathers dy from every window whose argmax is
//               this element (windows may overlap when stride < window), so no atomics;
//               windows that tile the input (stride = window, no padding) take one load.
// Bindings: 1 = out (read_write), 2 = idx (u32, read_write), 3 = src (x or dy).

struct Params {
    n: u32,
    c: u32,
    h: u32,
    w: u32,
    kh: u32,   // the pool window (the Rust side's WindowParams, shared with im2col.wgsl)
    kw: u32,
    stride: u32,
    pad: u32,
    oh: u32,
    ow: u32,
    total: u32,
    _p0: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<T>;
@group(0) @binding(2) var<storage, read_write> idx: array<u32>;
@group(0) @binding(3) var<storage, read> src: array<T>;

@compute @workgroup_size(256)
fn max_pool(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= p.total) {
        return;
    }
    let ox = i % p.ow;
    let oy = (i / p.ow) % p.oh;
    let plane = i / (p.ow * p.oh);
    let base = plane * p.h * p.w;
    var best = T(0.0);
    var best_i = 0xffffffffu;
    for (var ky = 0u; ky < p.kh; ky++) {
        let iy = i32(oy * p.stride + ky) - i32(p.pad);
        if (iy < 0 || iy >= i32(p.h)) {
            continue;
        }
        for (var kx = 0u; kx < p.kw; kx++) {
            let ix = i32(ox * p.stride + kx) - i32(p.pad);
            if (ix < 0 || ix >= i32(p.w)) {
                continue;
            }
            let j = base + u32(iy) * p.w + u32(ix);
            let v = src[j];
            if (best_i == 0xffffffffu || v > best) {
                best = v;
                best_i = j;
            }
        }
    }
    out[i] = best;
    idx[i] = best_i;
}

@compute @workgroup_size(256)
fn max_pool_bwd(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= p.total) {
        return;
    }
    let xx = i % p.w;
    let yy = (i / p.w) % p.h;
    let plane = i / (p.w * p.h);
    if (p.stride == p.kh && p.stride == p.kw && p.pad == 0u) {
        // Windows that tile the input (the usual 2x2, stride 2): this element lies in one
        // window at most, so one load and no loop.
        let oy = yy / p.stride;
        let ox = xx / p.stride;
        var g = 0.0;
        if (oy < p.oh && ox < p.ow) {
            let o = (plane * p.oh + oy) * p.ow + ox;
            g = select(0.0, f32(src[o]), idx[o] == i);
        }
        out[i] = T(g);
        return;
    }
    var acc = 0.0;
    for (var ky = 0u; ky < p.kh; ky++) {
        let oy_s = i32(yy + p.pad) - i32(ky);
        if (oy_s < 0 || u32(oy_s) % p.stride != 0u) {
            continue;
        }
        let oy = u32(oy_s) / p.stride;
        if (oy >= p.oh) {
            continue;
        }
        for (var kx = 0u; kx < p.kw; kx++) {
            let ox_s = i32(xx + p.pad) - i32(kx);
            if (ox_s < 0 || u32(ox_s) % p.stride != 0u) {
                continue;
            }
            let ox = u32(ox_s) / p.stride;
            if (ox >= p.ow) {
                continue;
            }
            let o = (plane * p.oh + oy) * p.ow + ox;
            if (idx[o] == i) {
                acc += f32(src[o]);
            }
        }
    }
    out[i] = T(acc);
}
