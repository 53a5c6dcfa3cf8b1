// Batch normalisation, fused, over a view x [N, C, S]: the statistics of channel c run over
// its N·S values (S = H·W for BatchNorm2d, S = 1 for the book's per-feature form). All
// arithmetic in f32 whatever T is.
//
// bn_stats / bn_bwd_reduce: one workgroup of 256 threads per channel (workgroup id →
// channel, 2-D past the per-dimension limit); each thread strides over the channel's
// m = N·S values (m/256 iterations, far under lavapipe's 65,535-iteration cutoff for any
// m the dispatch accepts, see src/gpu/ops.rs), then a tree reduction in workgroup memory.
// Two passes over x for the variance (mean first), so it does not cancel.
// bn_apply / bn_bwd_dx: one thread per element.
//
// Bindings: 1 = out (T, read_write: y or dx), 2 = x, 3 = dy, 4 = gamma, 5 = beta,
// 6 = stats (f32, read_write: [mean | inv_std] from bn_stats, dgamma from bn_bwd_reduce),
// 7 = saved (f32: bn_stats' [mean | inv_std], read by bn_apply and the backward),
// 8 = stats2 (f32, read_write: var from bn_stats, dbeta from bn_bwd_reduce).

struct Params {
    n: u32,
    c: u32,
    s: u32,
    eps: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<T>;
@group(0) @binding(2) var<storage, read> x: array<T>;
@group(0) @binding(3) var<storage, read> dy: array<T>;
@group(0) @binding(4) var<storage, read> gamma: array<T>;
@group(0) @binding(5) var<storage, read> beta: array<T>;
@group(0) @binding(6) var<storage, read_write> stats: array<f32>;
@group(0) @binding(7) var<storage, read> saved: array<f32>;
@group(0) @binding(8) var<storage, read_write> stats2: array<f32>;

var<workgroup> part_a: array<f32, 256>;
var<workgroup> part_b: array<f32, 256>;

fn channel_of(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.x + wid.y * nwg.x;
}

// Element e of channel ch (e < m = N·S) in x's layout [N, C, S].
fn at(ch: u32, e: u32) -> u32 {
    return ((e / p.s) * p.c + ch) * p.s + e % p.s;
}

// Sums part_a (and part_b) over the workgroup into slot 0.
fn reduce_pair(t: u32) {
    for (var w = 128u; w > 0u; w >>= 1u) {
        workgroupBarrier();
        if (t < w) {
            part_a[t] += part_a[t + w];
            part_b[t] += part_b[t + w];
        }
    }
    workgroupBarrier();
}

@compute @workgroup_size(256)
fn bn_stats(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) t: u32) {
    let ch = channel_of(wid, nwg);
    let m = p.n * p.s;
    if (ch >= p.c) {
        return;
    }
    var acc = 0.0;
    for (var e = t; e < m; e += 256u) {
        acc += f32(x[at(ch, e)]);
    }
    part_a[t] = acc;
    part_b[t] = 0.0;
    reduce_pair(t);
    let mean = part_a[0] / f32(m);
    workgroupBarrier();
    var sq = 0.0;
    for (var e = t; e < m; e += 256u) {
        let d = f32(x[at(ch, e)]) - mean;
        sq += d * d;
    }
    part_a[t] = sq;
    reduce_pair(t);
    if (t == 0u) {
        let var_ = part_a[0] / f32(m);
        stats[ch] = mean;
        stats[p.c + ch] = 1.0 / sqrt(var_ + p.eps);
        stats2[ch] = var_;
    }
}

// y = (x - mean) * inv_std * gamma + beta, with [mean | inv_std] in `saved`.
@compute @workgroup_size(256)
fn bn_apply(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= p.n * p.c * p.s) {
        return;
    }
    let ch = (i / p.s) % p.c;
    let xhat = (f32(x[i]) - saved[ch]) * saved[p.c + ch];
    out[i] = T(xhat * f32(gamma[ch]) + f32(beta[ch]));
}

// stats = dgamma = Σ dy·xhat, stats2 = dbeta = Σ dy over the channel.
@compute @workgroup_size(256)
fn bn_bwd_reduce(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) t: u32) {
    let ch = channel_of(wid, nwg);
    let m = p.n * p.s;
    if (ch >= p.c) {
        return;
    }
    let mean = saved[ch];
    let inv_std = saved[p.c + ch];
    var dg = 0.0;
    var db = 0.0;
    for (var e = t; e < m; e += 256u) {
        let k = at(ch, e);
        let g = f32(dy[k]);
        dg += g * (f32(x[k]) - mean) * inv_std;
        db += g;
    }
    part_a[t] = dg;
    part_b[t] = db;
    reduce_pair(t);
    if (t == 0u) {
        stats[ch] = part_a[0];
        stats2[ch] = part_b[0];
    }
}

// dx = gamma · inv_std / m · (m·dy - dbeta - xhat·dgamma), dgamma in `stats`, dbeta in
// `stats2`.
@compute @workgroup_size(256)
fn bn_bwd_dx(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= p.n * p.c * p.s) {
        return;
    }
    let ch = (i / p.s) % p.c;
    let m = f32(p.n * p.s);
    let inv_std = saved[p.c + ch];
    let xhat = (f32(x[i]) - saved[ch]) * inv_std;
    let k = f32(gamma[ch]) * inv_std / m;
    out[i] = T(k * (m * f32(dy[i]) - stats2[ch] - xhat * stats[ch]));
}
