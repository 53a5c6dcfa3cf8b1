// Layout changes: batched transpose [batch, rows, cols] -> [batch, cols, rows], the step
// between im2col-GEMM rows [n, oh*ow, c] and NCHW [n, c, oh*ow] in convolution; and the block
// copy behind narrow (slice) and concat along any dimension.
// One thread per output element (reads are strided; the tensors here are small).
// Bindings: 1 = out (read_write), 2 = x.

struct Params {
    batch: u32,
    rows: u32,
    cols: u32,
    _p0: u32,
    // copy_block only: the copied dimension's size in x and in out, and where the block
    // starts in each.
    src_dim: u32,
    dst_dim: u32,
    src_off: u32,
    dst_off: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<T>;
@group(0) @binding(2) var<storage, read> x: array<T>;

@compute @workgroup_size(256)
fn transpose(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    let per = p.rows * p.cols;
    if (i >= p.batch * per) {
        return;
    }
    let b = i / per;
    let rem = i % per;
    let c = rem / p.rows; // output is [cols, rows]
    let r = rem % p.rows;
    out[i] = x[b * per + r * p.cols + c];
}

// x viewed as [batch, src_dim, cols] and out as [batch, dst_dim, cols]:
// out[b, dst_off + j, k] = x[b, src_off + j, k] for j < rows; the rest of out is untouched.
@compute @workgroup_size(256)
fn copy_block(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    let per = p.rows * p.cols;
    if (i >= p.batch * per) {
        return;
    }
    let b = i / per;
    let j = (i % per) / p.cols;
    let k = i % p.cols;
    out[(b * p.dst_dim + p.dst_off + j) * p.cols + k] = x[(b * p.src_dim + p.src_off + j) * p.cols + k];
}
