// Indexing along one dim, and the reductions that pick an element (max / min with its index).
//
// Geometry: a tensor viewed as [outer, size, inner] around the indexed dim, row-major.
// index_select:     out[o, k, i] = x[o, idx[k], i]; one thread per output element.
// index_select_bwd: dx[o, d, i] = sum over k with idx[k] = d of g[o, k, i]; one thread per
//                   element of dx, looping over the `count` indices (deterministic: no atomics).
// gather:           out[o, j, i] = x[o, idx[o, j, i], i] (idx has the output's shape).
// gather_bwd:       dx[o, d, i] = sum over j with idx[o, j, i] = d of g[o, j, i].
// An index past `size` reads 0 and receives nothing (the CPU reference reports it as an error).
// extreme_rows:     per row of a [rows, cols] matrix, the max (MIN = 0) or min (MIN = 1) and the
//                   first index where it occurs; one 64-thread workgroup per row, a tree over
//                   (value, index) pairs; rows past 65,535 workgroups go to the grid's y.
// Bindings: 1 = out (read_write, T), 2 = x (T), 3 = idx (u32), 4 = out_idx (read_write, u32).

struct Params {
    outer: u32,
    size: u32,
    inner: u32,
    count: u32,
}

override MIN: u32 = 0u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<T>;
@group(0) @binding(2) var<storage, read> x: array<T>;
@group(0) @binding(3) var<storage, read> idx: array<u32>;
@group(0) @binding(4) var<storage, read_write> out_idx: array<u32>;

fn flat(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * 256u;
}

@compute @workgroup_size(256)
fn index_select(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = flat(gid, nwg);
    if (e >= p.outer * p.count * p.inner) {
        return;
    }
    let i = e % p.inner;
    let k = (e / p.inner) % p.count;
    let o = e / (p.inner * p.count);
    let d = idx[k];
    out[e] = select(T(0.0), x[(o * p.size + d) * p.inner + i], d < p.size);
}

@compute @workgroup_size(256)
fn index_select_bwd(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = flat(gid, nwg);
    if (e >= p.outer * p.size * p.inner) {
        return;
    }
    let i = e % p.inner;
    let d = (e / p.inner) % p.size;
    let o = e / (p.inner * p.size);
    var acc = 0.0;
    for (var k = 0u; k < p.count; k++) {
        if (idx[k] == d) {
            acc += f32(x[(o * p.count + k) * p.inner + i]);
        }
    }
    out[e] = T(acc);
}

@compute @workgroup_size(256)
fn gather(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = flat(gid, nwg);
    if (e >= p.outer * p.count * p.inner) {
        return;
    }
    let i = e % p.inner;
    let o = e / (p.inner * p.count);
    let d = idx[e];
    out[e] = select(T(0.0), x[(o * p.size + d) * p.inner + i], d < p.size);
}

@compute @workgroup_size(256)
fn gather_bwd(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = flat(gid, nwg);
    if (e >= p.outer * p.size * p.inner) {
        return;
    }
    let i = e % p.inner;
    let d = (e / p.inner) % p.size;
    let o = e / (p.inner * p.size);
    var acc = 0.0;
    for (var j = 0u; j < p.count; j++) {
        let at = (o * p.count + j) * p.inner + i;
        if (idx[at] == d) {
            acc += f32(x[at]);
        }
    }
    out[e] = T(acc);
}

var<workgroup> best_v: array<f32, 64>;
var<workgroup> best_i: array<u32, 64>;

// Whether (v, i) beats (bv, bi): the larger (smaller for MIN) value, the lower index on ties;
// NaN wins, as in PyTorch.
fn beats(v: f32, i: u32, bv: f32, bi: u32) -> bool {
    if (v != v) {
        return bv == bv || i < bi;
    }
    if (bv != bv) {
        return false;
    }
    if (v == bv) {
        return i < bi;
    }
    return select(v > bv, v < bv, MIN == 1u);
}

// Params: outer = rows, size = cols.
@compute @workgroup_size(64)
fn extreme_rows(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let row = wg.x + wg.y * nwg.x;
    let valid = row < p.outer;
    var bv = 0.0;
    var bi = 0xffffffffu;
    if (valid) {
        let base = row * p.size;
        for (var c = lid; c < p.size; c += 64u) {
            let v = f32(x[base + c]);
            if (bi == 0xffffffffu || beats(v, c, bv, bi)) {
                bv = v;
                bi = c;
            }
        }
    }
    best_v[lid] = bv;
    best_i[lid] = bi;
    workgroupBarrier();
    for (var s = 32u; s > 0u; s >>= 1u) {
        if (lid < s) {
            let oi = best_i[lid + s];
            if (oi != 0xffffffffu && (best_i[lid] == 0xffffffffu || beats(best_v[lid + s], oi, best_v[lid], best_i[lid]))) {
                best_v[lid] = best_v[lid + s];
                best_i[lid] = oi;
            }
        }
        workgroupBarrier();
    }
    if (valid && lid == 0u) {
        out[row] = T(best_v[0]);
        out_idx[row] = best_i[0];
    }
}
