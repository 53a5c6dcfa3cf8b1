// Batch gathering from a device-resident byte dataset (MNIST images or labels).
//
// The dataset is a byte matrix [rows, row_len] packed little-endian four bytes to a u32, so
// it stays on the GPU at its file size (47 MB for MNIST's training images). A batch is the
// rows perm[offset .. offset + count] of an epoch permutation that is uploaded once per
// epoch: a training step uploads nothing.
// gather_f32: out[r, c] = byte * scale (images to [0, 1]);  gather_u32: out_u[r, c] = byte.
//
// The same row gather from a float table serves embeddings: gather_rows:
// out[r, c] = table[perm[offset + r], c], a zero row for an index past the table (`scale`
// holds the table's row count as a float-free u32 via bitcast); one_hot: out[r, c] =
// (perm[r] == c), the matrix whose transpose times the output gradient is the embedding's
// weight gradient (a deterministic scatter-add: WGSL has no float atomics).
// Bindings: 1 = out (T, read_write), 2 = src (packed bytes), 3 = perm, 4 = out_u (read_write),
// 5 = table (T).

struct Params {
    count: u32,
    row_len: u32,
    offset: u32,
    scale: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<T>;
@group(0) @binding(2) var<storage, read> src: array<u32>;
@group(0) @binding(3) var<storage, read> perm: array<u32>;
@group(0) @binding(4) var<storage, read_write> out_u: array<u32>;
@group(0) @binding(5) var<storage, read> table: array<T>;

fn byte_at(i: u32) -> u32 {
    return (src[i >> 2u] >> ((i & 3u) * 8u)) & 0xffu;
}

fn source_index(i: u32) -> u32 {
    let r = i / p.row_len;
    let c = i % p.row_len;
    return perm[p.offset + r] * p.row_len + c;
}

@compute @workgroup_size(256)
fn gather_f32(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i < p.count * p.row_len) {
        out[i] = T(f32(byte_at(source_index(i))) * p.scale);
    }
}

@compute @workgroup_size(256)
fn gather_rows(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i < p.count * p.row_len) {
        let row = perm[p.offset + i / p.row_len];
        let rows = bitcast<u32>(p.scale);
        out[i] = select(T(0.0), table[row * p.row_len + i % p.row_len], row < rows);
    }
}

@compute @workgroup_size(256)
fn one_hot(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i < p.count * p.row_len) {
        out[i] = select(T(0.0), T(1.0), perm[p.offset + i / p.row_len] == i % p.row_len);
    }
}

@compute @workgroup_size(256)
fn gather_u32(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i < p.count * p.row_len) {
        out_u[i] = byte_at(source_index(i));
    }
}
