// im2col and its adjoint col2im for an NCHW input, as in the book's common/util.py.
//
// The column matrix is [N*OH*OW, C*KH*KW], rows ordered (n, oy, ox), columns (c, ky, kx).
// im2col: one thread per column-matrix element; padding reads as 0.
// col2im: one thread per input element, gathering every (window, ky, kx) that touches it, so
//         overlapping windows add up without atomics and the result is deterministic.
// Bindings: 1 = out (read_write), 2 = src.

struct Params {
    n: u32,
    c: u32,
    h: u32,
    w: u32,
    kh: u32,
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
@group(0) @binding(2) var<storage, read> src: array<T>;

@compute @workgroup_size(256)
fn im2col(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= p.total) {
        return;
    }
    let kk = p.kh * p.kw;
    let ncols = p.c * kk;
    let row = i / ncols;
    let col = i % ncols;
    let ch = col / kk;
    let ky = (col % kk) / p.kw;
    let kx = col % p.kw;
    let ohw = p.oh * p.ow;
    let n = row / ohw;
    let oy = (row % ohw) / p.ow;
    let ox = row % p.ow;
    let iy = i32(oy * p.stride + ky) - i32(p.pad);
    let ix = i32(ox * p.stride + kx) - i32(p.pad);
    var v = T(0.0);
    if (iy >= 0 && ix >= 0 && iy < i32(p.h) && ix < i32(p.w)) {
        v = src[((n * p.c + ch) * p.h + u32(iy)) * p.w + u32(ix)];
    }
    out[i] = v;
}

@compute @workgroup_size(256)
fn col2im(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= p.total) {
        return;
    }
    let xx = i % p.w;
    let yy = (i / p.w) % p.h;
    let ch = (i / (p.w * p.h)) % p.c;
    let n = i / (p.w * p.h * p.c);
    let kk = p.kh * p.kw;
    let ncols = p.c * kk;
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
            let row = (n * p.oh + oy) * p.ow + ox;
            acc += f32(src[row * ncols + ch * kk + ky * p.kw + kx]);
        }
    }
    out[i] = T(acc);
}
