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

// Bilinear resize of `batch` planes [rows, cols] to [src_dim, dst_dim] (the fields reused:
// out height, out width), PyTorch's interpolate(mode="bilinear", align_corners=False): the
// source coordinate of output pixel o is (o + 0.5)·in/out − 0.5, clamped at 0.
@compute @workgroup_size(256)
fn resize_bilinear(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    let oh = p.src_dim;
    let ow = p.dst_dim;
    if (i >= p.batch * oh * ow) {
        return;
    }
    let b = i / (oh * ow);
    let oy = (i / ow) % oh;
    let ox = i % ow;
    let sy = max((f32(oy) + 0.5) * f32(p.rows) / f32(oh) - 0.5, 0.0);
    let sx = max((f32(ox) + 0.5) * f32(p.cols) / f32(ow) - 0.5, 0.0);
    let y0 = min(u32(sy), p.rows - 1u);
    let x0 = min(u32(sx), p.cols - 1u);
    let y1 = min(y0 + 1u, p.rows - 1u);
    let x1 = min(x0 + 1u, p.cols - 1u);
    let wy = sy - f32(y0);
    let wx = sx - f32(x0);
    let base = b * p.rows * p.cols;
    let top = f32(x[base + y0 * p.cols + x0]) * (1.0 - wx) + f32(x[base + y0 * p.cols + x1]) * wx;
    let bottom = f32(x[base + y1 * p.cols + x0]) * (1.0 - wx) + f32(x[base + y1 * p.cols + x1]) * wx;
    out[i] = T(top * (1.0 - wy) + bottom * wy);
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
