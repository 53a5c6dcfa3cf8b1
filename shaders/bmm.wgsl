// Batched matrix product: C[b] = op(A[b]) · op(B[b]) for b < batch, all row-major; op(X) is Xᵀ
// when TRANS_A / TRANS_B is set (A stored [k, m], B stored [n, k]). A and B advance by
// stride_a / stride_b elements per batch (0: one matrix shared by every batch, a broadcast);
// C is contiguous [batch, m, n]. The 2-D products of the framework use matmul.wgsl's tuned
// GEMMs; this kernel serves `matmul` on batched operands (PyTorch's bmm / broadcast matmul).
//
// Tiles: 16×16 outputs per workgroup (one per thread), K walked in 16-wide shared-memory tiles.
// Grid: (ceil(n/16), ceil(m/16), batch).
// Bindings: 1 = C (read_write), 2 = A, 3 = B. Accumulation in f32.

struct Params {
    m: u32,
    n: u32,
    k: u32,
    batch: u32,
    stride_a: u32,
    stride_b: u32,
    _p0: u32,
    _p1: u32,
}

override TRANS_A: bool = false;
override TRANS_B: bool = false;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> c: array<T>;
@group(0) @binding(2) var<storage, read> a: array<T>;
@group(0) @binding(3) var<storage, read> b: array<T>;

var<workgroup> ta: array<array<f32, 16>, 16>;
var<workgroup> tb: array<array<f32, 16>, 16>;

fn load_a(base: u32, row: u32, col: u32) -> f32 {
    if (row >= p.m || col >= p.k) {
        return 0.0;
    }
    if (TRANS_A) {
        return f32(a[base + col * p.m + row]);
    }
    return f32(a[base + row * p.k + col]);
}

fn load_b(base: u32, row: u32, col: u32) -> f32 {
    if (row >= p.k || col >= p.n) {
        return 0.0;
    }
    if (TRANS_B) {
        return f32(b[base + col * p.k + row]);
    }
    return f32(b[base + row * p.n + col]);
}

@compute @workgroup_size(16, 16)
fn bmm(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let batch = wg.z;
    let row = wg.y * 16u + lid.y;
    let col = wg.x * 16u + lid.x;
    let base_a = batch * p.stride_a;
    let base_b = batch * p.stride_b;
    var acc = 0.0;
    let tiles = (p.k + 15u) / 16u;
    for (var t = 0u; t < tiles; t++) {
        ta[lid.y][lid.x] = load_a(base_a, row, t * 16u + lid.x);
        tb[lid.y][lid.x] = load_b(base_b, t * 16u + lid.y, col);
        workgroupBarrier();
        for (var q = 0u; q < 16u; q++) {
            acc += ta[lid.y][q] * tb[q][lid.x];
        }
        workgroupBarrier();
    }
    if (row < p.m && col < p.n) {
        c[(batch * p.m + row) * p.n + col] = T(acc);
    }
}
