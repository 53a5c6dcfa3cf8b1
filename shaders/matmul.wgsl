// Matrix product C = alpha * op(A) · op(B) + beta * C, row-major, f32 accumulation.
//
// `T` (the storage scalar) is defined by the prefix the pipeline cache prepends.
// Layout: A is [M, K] (or [K, M] when TRANS_A), B is [K, N] (or [N, K] when TRANS_B),
// C is [M, N]. Transposes are override constants, so each variant compiles branch-free.
//
// Two kernels, chosen per adapter (see gpu/ops.rs `MatmulKernel`):
// * matmul_rb     — register-blocked, no shared memory: 8x8 threads, 4x4 outputs each, a
//                   32x32 tile per workgroup. Best on CPU-like adapters (lavapipe), where
//                   barriers are costly and caches do the reuse.
// * matmul_tiled  — shared-memory tiled: 16x16 threads, 4x4 outputs each, a 64x64 tile per
//                   workgroup, K in steps of 16. The usual choice for real GPUs, where the
//                   tile in workgroup memory saves 16x the global reads.
// Out-of-range rows/columns are clamped on load (rb) or zero-filled (tiled) and masked on
// store, so any M, N, K ≥ 1 is valid.
//
// Split-K (`_part` entries): workgroup z covers K range [z * k_chunk, (z + 1) * k_chunk) and
// writes its raw f32 sums to part[z, M, N]; reduce.wgsl's column sums add the splits into C
// with alpha and beta. Used when K is long (conv weight gradients: K = N·OH·OW), which both
// fills a GPU whose C is small and keeps every thread's loop short — lavapipe stops an
// invocation's loops after 65,535 iterations.

struct Params {
    m: u32,
    n: u32,
    k: u32,
    alpha: f32,
    beta: f32,
    k_chunk: u32,
    _p1: u32,
    _p2: u32,
}

override TRANS_A: bool = false;
override TRANS_B: bool = false;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> c: array<T>;
@group(0) @binding(2) var<storage, read> a: array<T>;
@group(0) @binding(3) var<storage, read> b: array<T>;
@group(0) @binding(4) var<storage, read_write> part: array<f32>;

// The K range of split `z`.
fn k_range(z: u32) -> vec2<u32> {
    let k0 = z * p.k_chunk;
    return vec2<u32>(k0, min(k0 + p.k_chunk, p.k));
}

fn load_a(row: u32, kk: u32) -> f32 {
    if (TRANS_A) {
        return f32(a[kk * p.m + row]);
    }
    return f32(a[row * p.k + kk]);
}

fn load_b(kk: u32, col: u32) -> f32 {
    if (TRANS_B) {
        return f32(b[col * p.k + kk]);
    }
    return f32(b[kk * p.n + col]);
}

fn store_row(row: u32, col0: u32, v: vec4<f32>) {
    if (row >= p.m) {
        return;
    }
    for (var j = 0u; j < 4u; j++) {
        let col = col0 + j;
        if (col < p.n) {
            let i = row * p.n + col;
            var r = p.alpha * v[j];
            if (p.beta != 0.0) {
                r += p.beta * f32(c[i]);
            }
            c[i] = T(r);
        }
    }
}

fn store_part(z: u32, row: u32, col0: u32, v: vec4<f32>) {
    if (row >= p.m) {
        return;
    }
    for (var j = 0u; j < 4u; j++) {
        let col = col0 + j;
        if (col < p.n) {
            part[(z * p.m + row) * p.n + col] = v[j];
        }
    }
}

// The 4x4 outputs at (row0, col0) over K range kr.
fn rb_sums(row0: u32, col0: u32, kr: vec2<u32>) -> array<vec4<f32>, 4> {
    let r = min(vec4<u32>(row0, row0 + 1u, row0 + 2u, row0 + 3u), vec4<u32>(p.m - 1u));
    let q = min(vec4<u32>(col0, col0 + 1u, col0 + 2u, col0 + 3u), vec4<u32>(p.n - 1u));
    var acc: array<vec4<f32>, 4>;
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var kk = kr.x; kk < kr.y; kk++) {
        let bv = vec4<f32>(load_b(kk, q.x), load_b(kk, q.y), load_b(kk, q.z), load_b(kk, q.w));
        acc0 = fma(vec4<f32>(load_a(r.x, kk)), bv, acc0);
        acc1 = fma(vec4<f32>(load_a(r.y, kk)), bv, acc1);
        acc2 = fma(vec4<f32>(load_a(r.z, kk)), bv, acc2);
        acc3 = fma(vec4<f32>(load_a(r.w, kk)), bv, acc3);
    }
    acc[0] = acc0;
    acc[1] = acc1;
    acc[2] = acc2;
    acc[3] = acc3;
    return acc;
}

@compute @workgroup_size(8, 8)
fn matmul_rb(@builtin(global_invocation_id) gid: vec3<u32>) {
    let col0 = gid.x * 4u;
    let row0 = gid.y * 4u;
    if (row0 >= p.m || col0 >= p.n) {
        return;
    }
    let acc = rb_sums(row0, col0, k_range(0u));
    for (var i = 0u; i < 4u; i++) {
        store_row(row0 + i, col0, acc[i]);
    }
}

@compute @workgroup_size(8, 8)
fn matmul_rb_part(@builtin(global_invocation_id) gid: vec3<u32>) {
    let col0 = gid.x * 4u;
    let row0 = gid.y * 4u;
    if (row0 >= p.m || col0 >= p.n) {
        return;
    }
    let acc = rb_sums(row0, col0, k_range(gid.z));
    for (var i = 0u; i < 4u; i++) {
        store_part(gid.z, row0 + i, col0, acc[i]);
    }
}

const TILE: u32 = 64u;
const TILE_K: u32 = 16u;
// k-major tiles: tile_a[kk * TILE + row], tile_b[kk * TILE + col].
var<workgroup> tile_a: array<f32, 1024>;
var<workgroup> tile_b: array<f32, 1024>;

// The workgroup's 64x64 tile over K range kr; this thread's 4x4 outputs. Called from
// uniform control flow (it has barriers).
fn tiled_sums(wg: vec3<u32>, lid: vec3<u32>, kr: vec2<u32>) -> array<vec4<f32>, 4> {
    let tid = lid.y * 16u + lid.x;
    let row_base = wg.y * TILE;
    let col_base = wg.x * TILE;
    var acc: array<vec4<f32>, 4>;
    for (var i = 0u; i < 4u; i++) {
        acc[i] = vec4<f32>(0.0);
    }
    for (var k0 = kr.x; k0 < kr.y; k0 += TILE_K) {
        // 1024 elements per tile, 4 per thread; consecutive threads walk the contiguous axis.
        for (var i = 0u; i < 4u; i++) {
            let e = tid + i * 256u;
            var kk: u32;
            var rr: u32;
            if (TRANS_A) {
                rr = e % TILE;
                kk = e / TILE;
            } else {
                kk = e % TILE_K;
                rr = e / TILE_K;
            }
            let gr = row_base + rr;
            let gk = k0 + kk;
            var v = 0.0;
            if (gr < p.m && gk < kr.y) {
                v = load_a(gr, gk);
            }
            tile_a[kk * TILE + rr] = v;

            var cc: u32;
            var kb: u32;
            if (TRANS_B) {
                kb = e % TILE_K;
                cc = e / TILE_K;
            } else {
                cc = e % TILE;
                kb = e / TILE;
            }
            let gc = col_base + cc;
            let gkb = k0 + kb;
            var w = 0.0;
            if (gc < p.n && gkb < kr.y) {
                w = load_b(gkb, gc);
            }
            tile_b[kb * TILE + cc] = w;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < TILE_K; kk++) {
            let ao = kk * TILE + lid.y * 4u;
            let bo = kk * TILE + lid.x * 4u;
            let av = vec4<f32>(tile_a[ao], tile_a[ao + 1u], tile_a[ao + 2u], tile_a[ao + 3u]);
            let bv = vec4<f32>(tile_b[bo], tile_b[bo + 1u], tile_b[bo + 2u], tile_b[bo + 3u]);
            acc[0] = fma(vec4<f32>(av.x), bv, acc[0]);
            acc[1] = fma(vec4<f32>(av.y), bv, acc[1]);
            acc[2] = fma(vec4<f32>(av.z), bv, acc[2]);
            acc[3] = fma(vec4<f32>(av.w), bv, acc[3]);
        }
        workgroupBarrier();
    }
    return acc;
}

@compute @workgroup_size(16, 16)
fn matmul_tiled(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let acc = tiled_sums(wg, lid, k_range(0u));
    let row0 = wg.y * TILE + lid.y * 4u;
    let col0 = wg.x * TILE + lid.x * 4u;
    for (var i = 0u; i < 4u; i++) {
        store_row(row0 + i, col0, acc[i]);
    }
}

@compute @workgroup_size(16, 16)
fn matmul_tiled_part(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let acc = tiled_sums(wg, lid, k_range(wg.z));
    let row0 = wg.y * TILE + lid.y * 4u;
    let col0 = wg.x * TILE + lid.x * 4u;
    for (var i = 0u; i < 4u; i++) {
        store_part(wg.z, row0 + i, col0, acc[i]);
    }
}
