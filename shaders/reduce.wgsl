// Reductions over a row-major [rows, cols] matrix, f32 accumulation.
//
// No thread loops more than a few thousand times: lavapipe (llvmpipe) stops any invocation's
// loops after 65,535 iterations in total, silently, so a long serial loop is a wrong answer
// there, and a slow one on a real GPU.
//
// sum_rows:      [rows, cols] -> [cols] when rows <= block: one thread per column walks the
//                rows (coalesced across threads). out = alpha * sum + beta * out.
// sum_rows_part: the first stage when rows > block: thread (b, c) sums rows [b*block, ..) of
//                column c into the f32 partials part_out[b, c]. `outputs` = blocks * cols.
// sum_rows_part_f32, sum_rows_final: the same over f32 partials (part_in), into more
//                partials or into `out` with alpha and beta. Also split-K's reduction.
// sum_cols:      [rows, cols] -> [rows]; one 256-thread workgroup per row, strided partial
//                sums then a tree in workgroup memory. Also the whole-tensor sum (rows = 1).
//                Rows longer than 256 * 1024 are cut into blocks of that many columns
//                (sum_cols_part, f32 partials [rows, blocks]) and finished by sum_cols_f32.
// argmax_rows:   one thread per row, first maximum wins (as numpy/the book).
// count_correct: a single workgroup; each thread takes rows tid, tid+256, ..., compares the
//                row argmax with the label and the counts meet in a tree. Deterministic.
//                With `accumulate` = 1 the count is added to out_u[0] (accuracy over many
//                batches without a readback per batch).
// Bindings: 1 = out (T, read_write), 2 = x, 3 = out_u (u32, read_write), 4 = labels (u32),
//           5 = part_out (f32, read_write), 6 = part_in (f32).

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
@group(0) @binding(3) var<storage, read_write> out_u: array<u32>;
@group(0) @binding(4) var<storage, read> labels: array<u32>;
@group(0) @binding(5) var<storage, read_write> part_out: array<f32>;
@group(0) @binding(6) var<storage, read> part_in: array<f32>;

var<workgroup> part: array<f32, 256>;
var<workgroup> part_u: array<u32, 256>;

// Output o of a blocked column sum: (column, first row, end row).
fn sum_block(o: u32) -> vec3<u32> {
    let r0 = (o / p.cols) * p.block;
    return vec3<u32>(o % p.cols, r0, min(r0 + p.block, p.rows));
}

fn finish(o: u32, acc: f32) {
    var r = p.alpha * acc;
    if (p.beta != 0.0) {
        r += p.beta * f32(out[o]);
    }
    out[o] = T(r);
}

// Sum of column block o (see sum_block) of x, and of part_in.
fn x_block_sum(o: u32) -> f32 {
    let b = sum_block(o);
    var acc = 0.0;
    for (var r = b.y; r < b.z; r++) {
        acc += f32(x[r * p.cols + b.x]);
    }
    return acc;
}

fn part_block_sum(o: u32) -> f32 {
    let b = sum_block(o);
    var acc = 0.0;
    for (var r = b.y; r < b.z; r++) {
        acc += part_in[r * p.cols + b.x];
    }
    return acc;
}

@compute @workgroup_size(256)
fn sum_rows(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let o = gid.x + gid.y * nwg.x * 256u;
    if (o < p.outputs) {
        finish(o, x_block_sum(o));
    }
}

@compute @workgroup_size(256)
fn sum_rows_part(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let o = gid.x + gid.y * nwg.x * 256u;
    if (o < p.outputs) {
        part_out[o] = x_block_sum(o);
    }
}

@compute @workgroup_size(256)
fn sum_rows_part_f32(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let o = gid.x + gid.y * nwg.x * 256u;
    if (o < p.outputs) {
        part_out[o] = part_block_sum(o);
    }
}

@compute @workgroup_size(256)
fn sum_rows_final(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let o = gid.x + gid.y * nwg.x * 256u;
    if (o < p.outputs) {
        finish(o, part_block_sum(o));
    }
}

// The sum of every thread's `acc` over the 256-thread workgroup (all threads must call it).
fn workgroup_sum(lid: u32, acc: f32) -> f32 {
    part[lid] = acc;
    workgroupBarrier();
    for (var s = 128u; s > 0u; s >>= 1u) {
        if (lid < s) {
            part[lid] += part[lid + s];
        }
        workgroupBarrier();
    }
    return part[0];
}

// Output o of a blocked row sum: (row, first column, end column).
fn row_block(o: u32) -> vec3<u32> {
    let chunks = (p.cols + p.block - 1u) / p.block;
    let c0 = (o % chunks) * p.block;
    return vec3<u32>(o / chunks, c0, min(c0 + p.block, p.cols));
}

// This thread's strided share of row block o (see row_block) of x, and of part_in.
fn x_row_share(o: u32, lid: u32) -> f32 {
    let b = row_block(o);
    var acc = 0.0;
    for (var c = b.y + lid; c < b.z; c += 256u) {
        acc += f32(x[b.x * p.cols + c]);
    }
    return acc;
}

fn part_row_share(o: u32, lid: u32) -> f32 {
    let b = row_block(o);
    var acc = 0.0;
    for (var c = b.y + lid; c < b.z; c += 256u) {
        acc += part_in[b.x * p.cols + c];
    }
    return acc;
}

@compute @workgroup_size(256)
fn sum_cols(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let o = wg.x + wg.y * nwg.x;
    if (o >= p.outputs) {
        return; // uniform: the whole workgroup shares `o`
    }
    let total = workgroup_sum(lid, x_row_share(o, lid));
    if (lid == 0u) {
        out[o] = T(p.alpha * total);
    }
}

@compute @workgroup_size(256)
fn sum_cols_part(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
    let o = wg.x + wg.y * nwg.x;
    if (o >= p.outputs) {
        return;
    }
    let total = workgroup_sum(lid, x_row_share(o, lid));
    if (lid == 0u) {
        part_out[o] = total;
    }
}

@compute @workgroup_size(256)
fn sum_cols_f32(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let o = wg.x + wg.y * nwg.x;
    if (o >= p.outputs) {
        return;
    }
    let total = workgroup_sum(lid, part_row_share(o, lid));
    if (lid == 0u) {
        out[o] = T(p.alpha * total);
    }
}

fn row_argmax(row: u32) -> u32 {
    var best = 0u;
    var best_v = f32(x[row * p.cols]);
    for (var c = 1u; c < p.cols; c++) {
        let v = f32(x[row * p.cols + c]);
        if (v > best_v) {
            best_v = v;
            best = c;
        }
    }
    return best;
}

@compute @workgroup_size(256)
fn argmax_rows(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let row = gid.x + gid.y * nwg.x * 256u;
    if (row < p.rows) {
        out_u[row] = row_argmax(row);
    }
}

@compute @workgroup_size(256)
fn count_correct(@builtin(local_invocation_index) lid: u32) {
    var n = 0u;
    for (var r = lid; r < p.rows; r += 256u) {
        if (row_argmax(r) == labels[r]) {
            n += 1u;
        }
    }
    part_u[lid] = n;
    workgroupBarrier();
    for (var s = 128u; s > 0u; s >>= 1u) {
        if (lid < s) {
            part_u[lid] += part_u[lid + s];
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        out_u[0] = select(0u, out_u[0], p.accumulate != 0u) + part_u[0];
    }
}
