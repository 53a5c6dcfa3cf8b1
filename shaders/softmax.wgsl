// Row-wise softmax and softmax-cross-entropy over [rows, cols], numerically stable: each row
// subtracts its maximum before exp. One 64-thread workgroup per row (2-D dispatch past the
// per-dimension limit); the row max and sums meet in a workgroup-memory tree. f32 math.
//
// softmax:        out = softmax(x)
// softmax_bwd:    out = y * (dy - sum(dy * y))            (x = y, dy = upstream gradient)
// softmax_ce:     out = softmax(x), row_loss = logsumexp(x) - x[label]
//                 (a label >= cols yields NaN and is written into the fault record, which
//                 the next readback checks: see src/gpu/faults.rs)
// softmax_ce_bwd: out = (probs - onehot(label)) * alpha    (x = probs; one thread per element)
//                 (times dy[0], the loss's upstream gradient, when the DOUT override is set)
// Bindings: 1 = out (read_write), 2 = x, 3 = dy, 4 = labels (u32), 5 = row_loss (read_write),
// 63 = the context's fault record (first bad row, largest bad label, classes, op code 1).

// The Rust side's RowParams, shared with reduce.wgsl (the contract test compares the two):
// softmax reads rows, cols and alpha only.
struct Params {
    rows: u32,
    cols: u32,
    alpha: f32,
    accumulate: u32,
    block: u32,
    beta: f32,
    outputs: u32,
    _p0: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<T>;
@group(0) @binding(2) var<storage, read> x: array<T>;
@group(0) @binding(3) var<storage, read> dy: array<T>;
@group(0) @binding(4) var<storage, read> labels: array<u32>;
@group(0) @binding(5) var<storage, read_write> row_loss: array<T>;
@group(0) @binding(63) var<storage, read_write> faults: array<atomic<u32>, 4>;

const WG: u32 = 64u;
var<workgroup> red: array<f32, 64>;

fn reduce_max(lid: u32, v: f32) -> f32 {
    red[lid] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lid < s) {
            red[lid] = max(red[lid], red[lid + s]);
        }
        workgroupBarrier();
    }
    let r = red[0];
    workgroupBarrier();
    return r;
}

fn reduce_sum(lid: u32, v: f32) -> f32 {
    red[lid] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lid < s) {
            red[lid] += red[lid + s];
        }
        workgroupBarrier();
    }
    let r = red[0];
    workgroupBarrier();
    return r;
}

// Writes softmax(x[row]) to out[row] and returns (row max, sum of exp(x - max)).
fn softmax_row(row: u32, lid: u32) -> vec2<f32> {
    let base = row * p.cols;
    var m = f32(x[base]);
    for (var c = lid; c < p.cols; c += WG) {
        m = max(m, f32(x[base + c]));
    }
    m = reduce_max(lid, m);
    var s = 0.0;
    for (var c = lid; c < p.cols; c += WG) {
        s += exp(f32(x[base + c]) - m);
    }
    s = reduce_sum(lid, s);
    for (var c = lid; c < p.cols; c += WG) {
        out[base + c] = T(exp(f32(x[base + c]) - m) / s);
    }
    return vec2<f32>(m, s);
}

@compute @workgroup_size(64)
fn softmax(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
    let row = wg.x + wg.y * nwg.x;
    if (row >= p.rows) {
        return; // uniform per workgroup
    }
    softmax_row(row, lid);
}

@compute @workgroup_size(64)
fn softmax_ce(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
    let row = wg.x + wg.y * nwg.x;
    if (row >= p.rows) {
        return;
    }
    let ms = softmax_row(row, lid);
    if (lid == 0u) {
        let t = labels[row];
        // (max - x[t]) first: exact for large logits, where max + log(sum) would round.
        var loss = log(ms.y) + (ms.x - f32(x[row * p.cols + min(t, p.cols - 1u)]));
        if (t >= p.cols) {
            let zero = p.alpha * 0.0;
            loss = zero / zero; // NaN at run time: an out-of-range label
            atomicMin(&faults[0], row);
            atomicMax(&faults[1], t);
            atomicStore(&faults[2], p.cols);
            atomicStore(&faults[3], 1u);
        }
        row_loss[row] = T(loss);
    }
}

@compute @workgroup_size(64)
fn softmax_bwd(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let row = wg.x + wg.y * nwg.x;
    if (row >= p.rows) {
        return;
    }
    let base = row * p.cols;
    var d = 0.0;
    for (var c = lid; c < p.cols; c += WG) {
        d += f32(x[base + c]) * f32(dy[base + c]);
    }
    d = reduce_sum(lid, d);
    for (var c = lid; c < p.cols; c += WG) {
        let yv = f32(x[base + c]);
        out[base + c] = T(yv * (f32(dy[base + c]) - d));
    }
}

// Times dy[0], the loss's upstream gradient, when DOUT (the autograd rule, in one pass).
override DOUT: bool = false;

@compute @workgroup_size(256)
fn softmax_ce_bwd(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= p.rows * p.cols) {
        return;
    }
    let row = i / p.cols;
    let col = i % p.cols;
    let hot = select(0.0, 1.0, labels[row] == col);
    var scale = p.alpha;
    if (DOUT) {
        scale *= f32(dy[0]);
    }
    out[i] = T((f32(x[i]) - hot) * scale);
}
