// GEMM C = alpha * A · B (+ beta * C), f32 accumulation — for plain matrix products and, as
// implicit GEMM, for convolutions, whose column matrix is never materialised: the operand
// loaders read the NCHW tensors through the convolution's index map.
//
// `T` (the storage scalar) is defined by the prefix the pipeline cache prepends.
//
// MODE (override constant) picks what A, B and C are:
// 0 matmul     A [M, K] (or [K, M] when TRANS_A), B [K, N] (or [N, K] when TRANS_B),
//              C [M, N] row-major. BIAS adds bias[col], RELU clamps (a fused affine epilogue).
// 1 conv fwd   rows = filters f (M = F), cols = output pixels (n, oy, ox) (N = N·OH·OW),
//              K = (c, ky, kx): A = weights [F, C·KH·KW], B = the image under the window.
//              The epilogue adds bias[f] (BIAS), applies RELU and stores NCHW.
// 2 conv dx    rows = input channels c (M = C), cols = input pixels (n, iy, ix),
//              K = (f, ky, kx): A = weights w[f, c, ky, kx], B = dout at the output pixel whose
//              window puts tap (ky, kx) on (iy, ix) (none where the stride skips it). NCHW store.
// 3 conv dW    rows = filters f (M = F), cols = (c, ky, kx) plus one column of ones (N = C·KH·KW
//              + 1, so the last column is the bias gradient), K = (n, oy, ox) — always split:
//              each split writes raw f32 sums to part[z, M, N] and `conv_dw_final` adds them.
// In modes 2 and 3, MASK multiplies dout by (y > 0): a fused ReLU backward.
//
// Two kernels, chosen per adapter (see gpu/ops/gemm.rs `MatmulKernel`):
// * `*_rb`    register-blocked, no workgroup memory: 64 threads sharing RB_M rows (so A's
//             loads are uniform), RB_N columns each strided by 64 (RB_M, RB_N from M and N).
//             Best on CPU-like adapters (lavapipe), where barriers are costly and caches do
//             the reuse; its K loop walks the convolution taps incrementally. Plain products
//             with 4-aligned axes take `*_rb4` (vec4 loads, 8x8 per thread, below).
// * `*_tiled` workgroup-memory tiles BM x BN x TK, 256 threads with 4x4 outputs each. BM (16,
//             32 or 64: an override constant chosen from M) sets the shape — 16 x 256 for the
//             skinny conv GEMMs (M = filters), 64 x 64 for square ones; TK = min(16, 2048 / BN).
//             A thread's outputs are strided by the thread grid, so the inner loop reads
//             consecutive workgroup words across a warp (no bank conflicts) and stores coalesce.
//             The index maps are evaluated once per thread (its tile row and column) and once
//             per k step (into workgroup memory), not per element.
// Out-of-range rows/columns are clamped on load (rb) or zero-filled (tiled) and masked on
// store, so any M, N, K >= 1 is valid.
//
// Split-K (`_part` entries): workgroup z covers K range [z * k_chunk, (z + 1) * k_chunk) and
// writes its raw f32 sums to part[z, M, N]; reduce.wgsl's column sums (or `conv_dw_final`)
// add the splits. Used when K is long (conv weight gradients: K = N·OH·OW), which both fills
// a GPU whose C is small and keeps every thread's loop short — lavapipe stops an
// invocation's loops after 65,535 iterations.

struct Params {
    m: u32,
    n: u32,
    k: u32,
    alpha: f32,
    beta: f32,
    k_chunk: u32,
    splits: u32,
    _p0: u32,
    // Convolution geometry (modes 1-3): input [nb, c, h, w], filters [f, c, kh, kw].
    c: u32,
    h: u32,
    w: u32,
    f: u32,
    kh: u32,
    kw: u32,
    stride: u32,
    pad: u32,
    oh: u32,
    ow: u32,
    _p1: u32,
    _p2: u32,
}

override MODE: u32 = 0u;
override TRANS_A: bool = false;
override TRANS_B: bool = false;
override BIAS: bool = false;
override RELU: bool = false;
override MASK: bool = false;
// Convolutions with stride 1 (modes 1-3): the stride arithmetic folds away.
override UNIT_STRIDE: bool = false;
// Tiled kernel shape: BM rows per workgroup (16, 32, 64); the rest follows.
override BM: u32 = 64u;
override WY: u32 = BM / 4u;
override WX: u32 = 256u / WY;
override BN: u32 = WX * 4u;
override TK: u32 = min(16u, 2048u / BN);

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> c: array<T>;
@group(0) @binding(2) var<storage, read> a: array<T>;
@group(0) @binding(3) var<storage, read> b: array<T>;
@group(0) @binding(4) var<storage, read_write> part: array<f32>;
@group(0) @binding(5) var<storage, read> bias: array<T>;
@group(0) @binding(6) var<storage, read> y: array<T>;
@group(0) @binding(7) var<storage, read_write> db: array<T>;

// ---- index maps: what a row, a column and a k step mean in each mode ----------------------
// Each is a vec4<i32>; the loaders combine one row, one k and one column map.

// The K range of split `z`.
fn k_range(z: u32) -> vec2<u32> {
    let k0 = z * p.k_chunk;
    return vec2<u32>(k0, min(k0 + p.k_chunk, p.k));
}

fn row_map(row: u32) -> vec4<i32> {
    if (MODE == 0u) {
        return vec4<i32>(i32(row), 0, 0, 0);
    }
    if (MODE == 2u) {
        // channel c: its filter taps start at c·KH·KW inside each filter
        return vec4<i32>(i32(row * p.kh * p.kw), 0, 0, 0);
    }
    // modes 1 and 3: filter f — its weights (mode 1), its dout plane (mode 3)
    if (MODE == 1u) {
        return vec4<i32>(i32(row * p.c * p.kh * p.kw), 0, 0, 0);
    }
    return vec4<i32>(i32(row * p.oh * p.ow), 0, 0, 0);
}

fn col_map(col: u32) -> vec4<i32> {
    if (MODE == 0u) {
        return vec4<i32>(i32(col), 0, 0, 0);
    }
    if (MODE == 1u) {
        // output pixel (n, oy, ox): offset of its window's top-left tap in x, and that tap
        let ohw = p.oh * p.ow;
        let n = col / ohw;
        let q = col % ohw;
        let y0 = i32((q / p.ow) * p.stride) - i32(p.pad);
        let x0 = i32((q % p.ow) * p.stride) - i32(p.pad);
        return vec4<i32>(i32(n * p.c * p.h * p.w) + y0 * i32(p.w) + x0, y0, x0, 0);
    }
    if (MODE == 2u) {
        // input pixel (n, iy, ix): (dout offset of output pixel (iy + pad, ix + pad) — where
        // tap (0, 0) would come from at stride 1 —, iy + pad, ix + pad, dout image base)
        let hw = p.h * p.w;
        let n = col / hw;
        let q = col % hw;
        let ty = i32(q / p.w + p.pad);
        let tx = i32(q % p.w + p.pad);
        let base = i32(n * p.f * p.oh * p.ow);
        return vec4<i32>(base + ty * i32(p.ow) + tx, ty, tx, base);
    }
    // mode 3: tap (ch, ky, kx) — (its offset in an image, ky, kx, 0) — or the ones column,
    // whose tap lies outside every image (so the load gives 0) and w = 1 adds the one.
    let taps = p.kh * p.kw;
    if (col >= p.c * taps) {
        return vec4<i32>(0, -1073741824, 0, 1);
    }
    let ch = col / taps;
    let t = col % taps;
    let ky = t / p.kw;
    let kx = t % p.kw;
    return vec4<i32>(i32(ch * p.h * p.w + ky * p.w + kx), i32(ky), i32(kx), 0);
}

fn k_map(kk: u32) -> vec4<i32> {
    if (MODE == 0u) {
        return vec4<i32>(i32(kk), 0, 0, 0);
    }
    if (MODE == 1u) {
        // tap (ch, ky, kx): (weight column, its offset in an image, ky, kx)
        let taps = p.kh * p.kw;
        let ch = kk / taps;
        let t = kk % taps;
        let ky = t / p.kw;
        let kx = t % p.kw;
        return vec4<i32>(i32(kk), i32(ch * p.h * p.w + ky * p.w + kx), i32(ky), i32(kx));
    }
    if (MODE == 2u) {
        // (fi, ky, kx): (weight offset fi·C·KH·KW + ky·KW + kx, fi·OH·OW - ky·OW - kx, ky, kx)
        let taps = p.kh * p.kw;
        let fi = kk / taps;
        let t = kk % taps;
        let ky = t / p.kw;
        let kx = t % p.kw;
        return vec4<i32>(i32(fi * p.c * taps + ky * p.kw + kx),
                         i32(fi * p.oh * p.ow) - i32(ky * p.ow) - i32(kx), i32(ky), i32(kx));
    }
    // mode 3: output pixel (n, oy, ox): (dout offset n·F·OH·OW + q, offset of its window's
    // top-left tap in x, y0, x0)
    let ohw = p.oh * p.ow;
    let n = kk / ohw;
    let q = kk % ohw;
    let y0 = i32((q / p.ow) * p.stride) - i32(p.pad);
    let x0 = i32((q % p.ow) * p.stride) - i32(p.pad);
    return vec4<i32>(i32(n * p.f * ohw + q), i32(n * p.c * p.h * p.w) + y0 * i32(p.w) + x0, y0, x0);
}

// The map of step kk + 1 from that of kk, without divisions (the register-blocked K loop).
fn k_next(km: vec4<i32>, kk: u32) -> vec4<i32> {
    let hw = i32(p.h * p.w);
    let kw = i32(p.kw);
    let kh = i32(p.kh);
    if (MODE == 0u) {
        return km + vec4<i32>(1, 0, 0, 0);
    }
    if (MODE == 1u) {
        var r = km + vec4<i32>(1, 1, 0, 1);
        if (r.w == kw) {
            r.w = 0;
            r.z += 1;
            r.y += i32(p.w) - kw;
            if (r.z == kh) {
                r.z = 0;
                r.y += hw - kh * i32(p.w);
            }
        }
        return r;
    }
    if (MODE == 2u) {
        let ow = i32(p.ow);
        var r = km + vec4<i32>(1, -1, 0, 1);
        if (r.w == kw) {
            r.w = 0;
            r.z += 1;
            r.y += kw - ow;
            if (r.z == kh) {
                r.z = 0;
                // next filter: its weights start C·KH·KW further; its dout plane OH·OW
                r.x += i32(p.c * p.kh * p.kw) - kh * kw;
                r.y += i32(p.oh) * ow + kh * ow;
            }
        }
        return r;
    }
    // mode 3: next output pixel
    let s = select(i32(p.stride), 1, UNIT_STRIDE);
    var r = km + vec4<i32>(1, s, 0, s);
    if (r.w == i32(p.ow) * s - i32(p.pad)) {
        r.w = -i32(p.pad);
        r.z += s;
        r.y += s * i32(p.w) - i32(p.ow) * s;
        if (r.z == i32(p.oh) * s - i32(p.pad)) {
            r.z = -i32(p.pad);
            r.y += i32(p.c) * hw - i32(p.oh) * s * i32(p.w);
            r.x += i32((p.f - 1u) * p.oh * p.ow);
        }
    }
    return r;
}

// Whether element (y, x) of a [h, w] plane exists (negative values wrap to large ones).
fn inside(yy: i32, xx: i32, hh: u32, ww: u32) -> bool {
    return u32(yy) < hh && u32(xx) < ww;
}

// A dout value `v` read at flat index i, times the ReLU mask (y[i] > 0) when MASK.
fn masked(v: f32, i: i32) -> f32 {
    if (!MASK) {
        return v;
    }
    return select(v, 0.0, f32(y[i]) <= 0.0);
}

fn load_a(rm: vec4<i32>, km: vec4<i32>, row: u32, kk: u32) -> f32 {
    if (MODE == 0u) {
        if (TRANS_A) {
            return f32(a[kk * p.m + row]);
        }
        return f32(a[row * p.k + kk]);
    }
    if (MODE == 3u) {
        // dout[n, f, q]
        let i = rm.x + km.x;
        return masked(f32(a[i]), i);
    }
    // modes 1 and 2: weights
    return f32(a[rm.x + km.x]);
}

fn load_b(km: vec4<i32>, cm: vec4<i32>, kk: u32, col: u32) -> f32 {
    if (MODE == 0u) {
        if (TRANS_B) {
            return f32(b[col * p.k + kk]);
        }
        return f32(b[kk * p.n + col]);
    }
    if (MODE == 1u) {
        // x under tap (ky, kx) of the window at (y0, x0). The load is unconditional (at a
        // clamped index) and the padding zeroed by a select: branch-free, which a CPU-like
        // adapter runs as one gather instead of a masked one.
        let v = f32(b[max(cm.x + km.y, 0)]);
        return select(0.0, v, inside(cm.y + km.z, cm.z + km.w, p.h, p.w));
    }
    if (MODE == 2u) {
        // dout at the output pixel whose tap (ky, kx) lands on this input pixel
        var ty = cm.y - km.z;
        var tx = cm.z - km.w;
        var i = cm.x + km.y;
        if (!UNIT_STRIDE && p.stride != 1u) {
            let s = i32(p.stride);
            if (ty < 0 || tx < 0 || ty % s != 0 || tx % s != 0) {
                return 0.0;
            }
            ty = ty / s;
            tx = tx / s;
            // the filter's plane: km.y + ky·OW + kx = fi·OH·OW
            i = cm.w + km.y + km.z * i32(p.ow) + km.w + ty * i32(p.ow) + tx;
        }
        let j = max(i, 0);
        return select(0.0, masked(f32(b[j]), j), inside(ty, tx, p.oh, p.ow));
    }
    // mode 3: x under tap (ky, kx) of output pixel kk's window, plus 1 in the ones column
    let v = f32(b[max(km.y + cm.x, 0)]);
    return select(f32(cm.w), v, inside(km.z + cm.y, km.w + cm.z, p.h, p.w));
}

// ---- epilogues ------------------------------------------------------------------------------

fn store(row: u32, col: u32, v: f32) {
    if (row >= p.m || col >= p.n) {
        return;
    }
    if (MODE == 0u) {
        let i = row * p.n + col;
        var r = p.alpha * v;
        if (p.beta != 0.0) {
            r += p.beta * f32(c[i]);
        }
        if (BIAS) {
            r += f32(bias[col]);
        }
        if (RELU) {
            r = max(r, 0.0);
        }
        c[i] = T(r);
        return;
    }
    if (MODE == 1u) {
        let ohw = p.oh * p.ow;
        var r = v;
        if (BIAS) {
            r += f32(bias[row]);
        }
        if (RELU) {
            r = max(r, 0.0);
        }
        c[((col / ohw) * p.f + row) * ohw + col % ohw] = T(r);
        return;
    }
    // mode 2: dx[n, c, iy, ix]
    let hw = p.h * p.w;
    c[((col / hw) * p.c + row) * hw + col % hw] = T(v);
}

fn store_part(z: u32, row: u32, col: u32, v: f32) {
    if (row < p.m && col < p.n) {
        part[(z * p.m + row) * p.n + col] = v;
    }
}

// ---- register-blocked kernel ----------------------------------------------------------------
// A workgroup is 64 threads in a row: it owns RB_M rows (the same for every thread, so A's
// loads are uniform across the workgroup: one scalar load on a CPU-like adapter, a broadcast
// on a GPU) and 64·RB_N columns, thread t taking columns t, t + 64, … (consecutive threads on
// consecutive columns of B).

// Outputs per thread: RB_M rows (1-16) x RB_N columns (1-4).
override RB_M: u32 = 8u;
override RB_N: u32 = 4u;

// The RB_M x RB_N outputs of rows row0.. and columns col0 + 64·j over K range kr.
fn rb_sums(row0: u32, col0: u32, kr: vec2<u32>) -> array<array<f32, 4>, 16> {
    var rows: array<u32, 16>;
    var rms: array<vec4<i32>, 16>;
    for (var i = 0u; i < RB_M; i++) {
        rows[i] = min(row0 + i, p.m - 1u);
        rms[i] = row_map(rows[i]);
    }
    var cols: array<u32, 4>;
    var cms: array<vec4<i32>, 4>;
    for (var j = 0u; j < RB_N; j++) {
        cols[j] = min(col0 + j * 64u, p.n - 1u);
        cms[j] = col_map(cols[j]);
    }
    var acc: array<array<f32, 4>, 16>;
    for (var i = 0u; i < RB_M; i++) {
        for (var j = 0u; j < RB_N; j++) {
            acc[i][j] = 0.0;
        }
    }
    var km = k_map(kr.x);
    for (var kk = kr.x; kk < kr.y; kk++) {
        var bv: array<f32, 4>;
        for (var j = 0u; j < RB_N; j++) {
            bv[j] = load_b(km, cms[j], kk, cols[j]);
        }
        for (var i = 0u; i < RB_M; i++) {
            let av = load_a(rms[i], km, rows[i], kk);
            for (var j = 0u; j < RB_N; j++) {
                acc[i][j] = fma(av, bv[j], acc[i][j]);
            }
        }
        km = k_next(km, kk);
    }
    return acc;
}

@compute @workgroup_size(64)
fn matmul_rb(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row0 = wg.y * RB_M;
    let col0 = wg.x * 64u * RB_N + lid.x;
    if (col0 >= p.n) {
        return;
    }
    let acc = rb_sums(row0, col0, k_range(0u));
    for (var i = 0u; i < RB_M; i++) {
        for (var j = 0u; j < RB_N; j++) {
            store(row0 + i, col0 + j * 64u, acc[i][j]);
        }
    }
}

@compute @workgroup_size(64)
fn matmul_rb_part(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row0 = wg.y * RB_M;
    let col0 = wg.x * 64u * RB_N + lid.x;
    if (col0 >= p.n) {
        return;
    }
    let acc = rb_sums(row0, col0, k_range(wg.z));
    for (var i = 0u; i < RB_M; i++) {
        for (var j = 0u; j < RB_N; j++) {
            store_part(wg.z, row0 + i, col0 + j * 64u, acc[i][j]);
        }
    }
}

// ---- workgroup-tiled kernel -----------------------------------------------------------------

// k-major tiles: tile_a[kk * BM + row], tile_b[kk * BN + col]; TK·BM <= 1024, TK·BN <= 2048.
var<workgroup> tile_a: array<f32, 1024>;
var<workgroup> tile_b: array<f32, 2048>;
var<workgroup> kmap: array<vec4<i32>, 16>;

// The workgroup's BM x BN tile over K range kr; this thread's 4x4 outputs, at rows
// ty + i·WY and columns tx + j·WX. Called from uniform control flow (it has barriers).
fn tiled_sums(wg: vec3<u32>, lid: vec3<u32>, kr: vec2<u32>) -> array<vec4<f32>, 4> {
    let tid = lid.y * WX + lid.x;
    let row_base = wg.y * BM;
    let col_base = wg.x * BN;
    // 256 is a multiple of BM and BN, so in the convolution modes a thread loads one tile
    // row and one tile column throughout: their index maps are computed once.
    let my_rm = row_map(min(row_base + tid % BM, p.m - 1u));
    let my_cm = col_map(min(col_base + tid % BN, p.n - 1u));
    var acc: array<vec4<f32>, 4>;
    for (var i = 0u; i < 4u; i++) {
        acc[i] = vec4<f32>(0.0);
    }
    for (var k0 = kr.x; k0 < kr.y; k0 += TK) {
        if (tid < TK) {
            kmap[tid] = k_map(min(k0 + tid, p.k - 1u));
        }
        workgroupBarrier();
        // TK·BM elements of A; consecutive threads along the contiguous axis of plain A
        for (var e = tid; e < TK * BM; e += 256u) {
            var kk: u32;
            var rr: u32;
            if (MODE == 0u && !TRANS_A) {
                kk = e % TK;
                rr = e / TK;
            } else {
                rr = e % BM;
                kk = e / BM;
            }
            let gr = row_base + rr;
            let gk = k0 + kk;
            var v = 0.0;
            if (gr < p.m && gk < kr.y) {
                v = load_a(my_rm, kmap[kk], gr, gk);
            }
            tile_a[kk * BM + rr] = v;
        }
        for (var e = tid; e < TK * BN; e += 256u) {
            var kk: u32;
            var cc: u32;
            if (MODE == 0u && TRANS_B) {
                kk = e % TK;
                cc = e / TK;
            } else {
                cc = e % BN;
                kk = e / BN;
            }
            let gc = col_base + cc;
            let gk = k0 + kk;
            var v = 0.0;
            if (gc < p.n && gk < kr.y) {
                v = load_b(kmap[kk], my_cm, gk, gc);
            }
            tile_b[kk * BN + cc] = v;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < TK; kk++) {
            let ao = kk * BM + lid.y;
            let bo = kk * BN + lid.x;
            let av = vec4<f32>(tile_a[ao], tile_a[ao + WY], tile_a[ao + 2u * WY], tile_a[ao + 3u * WY]);
            let bv = vec4<f32>(tile_b[bo], tile_b[bo + WX], tile_b[bo + 2u * WX], tile_b[bo + 3u * WX]);
            acc[0] = fma(vec4<f32>(av.x), bv, acc[0]);
            acc[1] = fma(vec4<f32>(av.y), bv, acc[1]);
            acc[2] = fma(vec4<f32>(av.z), bv, acc[2]);
            acc[3] = fma(vec4<f32>(av.w), bv, acc[3]);
        }
        workgroupBarrier();
    }
    return acc;
}

@compute @workgroup_size(WX, WY)
fn matmul_tiled(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let acc = tiled_sums(wg, lid, k_range(0u));
    for (var i = 0u; i < 4u; i++) {
        for (var j = 0u; j < 4u; j++) {
            store(wg.y * BM + lid.y + i * WY, wg.x * BN + lid.x + j * WX, acc[i][j]);
        }
    }
}

@compute @workgroup_size(WX, WY)
fn matmul_tiled_part(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let acc = tiled_sums(wg, lid, k_range(wg.z));
    for (var i = 0u; i < 4u; i++) {
        for (var j = 0u; j < 4u; j++) {
            store_part(wg.z, wg.y * BM + lid.y + i * WY, wg.x * BN + lid.x + j * WX, acc[i][j]);
        }
    }
}

// ---- conv weight-gradient finish -------------------------------------------------------------

// part [splits, F, C·KH·KW + 1] → dw [F, C·KH·KW] and db [F] (the last column), summed over
// the splits in order (deterministic). One thread per (f, column).
@compute @workgroup_size(256)
fn conv_dw_final(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= p.m * p.n) {
        return;
    }
    var s = 0.0;
    for (var z = 0u; z < p.splits; z++) {
        s += part[z * p.m * p.n + i];
    }
    let f = i / p.n;
    let j = i % p.n;
    let ckk = p.n - 1u;
    if (j < ckk) {
        c[f * ckk + j] = T(s);
    } else {
        db[f] = T(s);
    }
}

// ---- register-blocked kernel with vec4 loads (plain matmul) --------------------------------
// Mode 0 when the contiguous axes allow 16-byte loads (Rust checks: K % 4 == 0 where A or B
// runs along K, M % 4 == 0 for a transposed A, N % 4 == 0 for a plain B): a thread computes 4
// rows x 8 columns from 4x4 blocks loaded as vec4 and turned k-major with `transpose`. On
// lavapipe every load that differs across invocations costs a per-invocation memory access,
// so one vec4 load instead of four scalar ones is most of the speed (~2x there).

@group(0) @binding(8) var<storage, read> a4: array<vec4<T>>;
@group(0) @binding(9) var<storage, read> b4: array<vec4<T>>;

// The 4x4 block of A at rows row0.. and k 4·kq.., as am[i][t] = A[row0 + i, 4·kq + t].
fn a_block(row0: u32, kq: u32) -> mat4x4<f32> {
    if (TRANS_A) {
        // a is [K, M]: one vec4 holds 4 rows at one k
        let m4 = p.m / 4u;
        let r = row0 / 4u;
        return transpose(mat4x4<f32>(vec4<f32>(a4[(kq * 4u) * m4 + r]),
                                     vec4<f32>(a4[(kq * 4u + 1u) * m4 + r]),
                                     vec4<f32>(a4[(kq * 4u + 2u) * m4 + r]),
                                     vec4<f32>(a4[(kq * 4u + 3u) * m4 + r])));
    }
    let k4 = p.k / 4u;
    let last = p.m - 1u;
    return mat4x4<f32>(vec4<f32>(a4[min(row0, last) * k4 + kq]),
                       vec4<f32>(a4[min(row0 + 1u, last) * k4 + kq]),
                       vec4<f32>(a4[min(row0 + 2u, last) * k4 + kq]),
                       vec4<f32>(a4[min(row0 + 3u, last) * k4 + kq]));
}

// The 4x4 block of B at k 4·kq.. and columns 4·cq.., as bm[t][j] = B[4·kq + t, 4·cq + j].
fn b_block(kq: u32, cq: u32) -> mat4x4<f32> {
    if (TRANS_B) {
        // b is [N, K]: one vec4 holds 4 k of one column
        let k4 = p.k / 4u;
        let last = p.n - 1u;
        let c0 = cq * 4u;
        return transpose(mat4x4<f32>(vec4<f32>(b4[min(c0, last) * k4 + kq]),
                                     vec4<f32>(b4[min(c0 + 1u, last) * k4 + kq]),
                                     vec4<f32>(b4[min(c0 + 2u, last) * k4 + kq]),
                                     vec4<f32>(b4[min(c0 + 3u, last) * k4 + kq])));
    }
    let n4 = p.n / 4u;
    let q = min(cq, n4 - 1u);
    return mat4x4<f32>(vec4<f32>(b4[(kq * 4u) * n4 + q]),
                       vec4<f32>(b4[(kq * 4u + 1u) * n4 + q]),
                       vec4<f32>(b4[(kq * 4u + 2u) * n4 + q]),
                       vec4<f32>(b4[(kq * 4u + 3u) * n4 + q]));
}

// Rows row0..+8 x columns col0..+8 over K range kr (multiples of 4): acc[2i + j] holds
// row i, columns 4j..4j+3. Written out in full: llvmpipe keeps the 64 sums in registers
// only so.
fn rb4_sums(row0: u32, col0: u32, kr: vec2<u32>) -> array<vec4<f32>, 16> {
    var c0 = vec4<f32>(0.0);
    var c1 = vec4<f32>(0.0);
    var c2 = vec4<f32>(0.0);
    var c3 = vec4<f32>(0.0);
    var c4 = vec4<f32>(0.0);
    var c5 = vec4<f32>(0.0);
    var c6 = vec4<f32>(0.0);
    var c7 = vec4<f32>(0.0);
    var c8 = vec4<f32>(0.0);
    var c9 = vec4<f32>(0.0);
    var c10 = vec4<f32>(0.0);
    var c11 = vec4<f32>(0.0);
    var c12 = vec4<f32>(0.0);
    var c13 = vec4<f32>(0.0);
    var c14 = vec4<f32>(0.0);
    var c15 = vec4<f32>(0.0);
    let cq = col0 / 4u;
    for (var kq = kr.x / 4u; kq < kr.y / 4u; kq++) {
        let a0 = a_block(row0 + 0u, kq);
        let a1 = a_block(row0 + 4u, kq);
        let p0 = b_block(kq, cq + 0u);
        let p1 = b_block(kq, cq + 1u);
        let b00 = p0[0u];
        let b10 = p1[0u];
        c0 = fma(vec4<f32>(a0[0u].x), b00, c0);
        c1 = fma(vec4<f32>(a0[0u].x), b10, c1);
        c2 = fma(vec4<f32>(a0[1u].x), b00, c2);
        c3 = fma(vec4<f32>(a0[1u].x), b10, c3);
        c4 = fma(vec4<f32>(a0[2u].x), b00, c4);
        c5 = fma(vec4<f32>(a0[2u].x), b10, c5);
        c6 = fma(vec4<f32>(a0[3u].x), b00, c6);
        c7 = fma(vec4<f32>(a0[3u].x), b10, c7);
        c8 = fma(vec4<f32>(a1[0u].x), b00, c8);
        c9 = fma(vec4<f32>(a1[0u].x), b10, c9);
        c10 = fma(vec4<f32>(a1[1u].x), b00, c10);
        c11 = fma(vec4<f32>(a1[1u].x), b10, c11);
        c12 = fma(vec4<f32>(a1[2u].x), b00, c12);
        c13 = fma(vec4<f32>(a1[2u].x), b10, c13);
        c14 = fma(vec4<f32>(a1[3u].x), b00, c14);
        c15 = fma(vec4<f32>(a1[3u].x), b10, c15);
        let b01 = p0[1u];
        let b11 = p1[1u];
        c0 = fma(vec4<f32>(a0[0u].y), b01, c0);
        c1 = fma(vec4<f32>(a0[0u].y), b11, c1);
        c2 = fma(vec4<f32>(a0[1u].y), b01, c2);
        c3 = fma(vec4<f32>(a0[1u].y), b11, c3);
        c4 = fma(vec4<f32>(a0[2u].y), b01, c4);
        c5 = fma(vec4<f32>(a0[2u].y), b11, c5);
        c6 = fma(vec4<f32>(a0[3u].y), b01, c6);
        c7 = fma(vec4<f32>(a0[3u].y), b11, c7);
        c8 = fma(vec4<f32>(a1[0u].y), b01, c8);
        c9 = fma(vec4<f32>(a1[0u].y), b11, c9);
        c10 = fma(vec4<f32>(a1[1u].y), b01, c10);
        c11 = fma(vec4<f32>(a1[1u].y), b11, c11);
        c12 = fma(vec4<f32>(a1[2u].y), b01, c12);
        c13 = fma(vec4<f32>(a1[2u].y), b11, c13);
        c14 = fma(vec4<f32>(a1[3u].y), b01, c14);
        c15 = fma(vec4<f32>(a1[3u].y), b11, c15);
        let b02 = p0[2u];
        let b12 = p1[2u];
        c0 = fma(vec4<f32>(a0[0u].z), b02, c0);
        c1 = fma(vec4<f32>(a0[0u].z), b12, c1);
        c2 = fma(vec4<f32>(a0[1u].z), b02, c2);
        c3 = fma(vec4<f32>(a0[1u].z), b12, c3);
        c4 = fma(vec4<f32>(a0[2u].z), b02, c4);
        c5 = fma(vec4<f32>(a0[2u].z), b12, c5);
        c6 = fma(vec4<f32>(a0[3u].z), b02, c6);
        c7 = fma(vec4<f32>(a0[3u].z), b12, c7);
        c8 = fma(vec4<f32>(a1[0u].z), b02, c8);
        c9 = fma(vec4<f32>(a1[0u].z), b12, c9);
        c10 = fma(vec4<f32>(a1[1u].z), b02, c10);
        c11 = fma(vec4<f32>(a1[1u].z), b12, c11);
        c12 = fma(vec4<f32>(a1[2u].z), b02, c12);
        c13 = fma(vec4<f32>(a1[2u].z), b12, c13);
        c14 = fma(vec4<f32>(a1[3u].z), b02, c14);
        c15 = fma(vec4<f32>(a1[3u].z), b12, c15);
        let b03 = p0[3u];
        let b13 = p1[3u];
        c0 = fma(vec4<f32>(a0[0u].w), b03, c0);
        c1 = fma(vec4<f32>(a0[0u].w), b13, c1);
        c2 = fma(vec4<f32>(a0[1u].w), b03, c2);
        c3 = fma(vec4<f32>(a0[1u].w), b13, c3);
        c4 = fma(vec4<f32>(a0[2u].w), b03, c4);
        c5 = fma(vec4<f32>(a0[2u].w), b13, c5);
        c6 = fma(vec4<f32>(a0[3u].w), b03, c6);
        c7 = fma(vec4<f32>(a0[3u].w), b13, c7);
        c8 = fma(vec4<f32>(a1[0u].w), b03, c8);
        c9 = fma(vec4<f32>(a1[0u].w), b13, c9);
        c10 = fma(vec4<f32>(a1[1u].w), b03, c10);
        c11 = fma(vec4<f32>(a1[1u].w), b13, c11);
        c12 = fma(vec4<f32>(a1[2u].w), b03, c12);
        c13 = fma(vec4<f32>(a1[2u].w), b13, c13);
        c14 = fma(vec4<f32>(a1[3u].w), b03, c14);
        c15 = fma(vec4<f32>(a1[3u].w), b13, c15);
    }
    return array<vec4<f32>, 16>(c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12, c13, c14, c15);
}

@compute @workgroup_size(64)
fn matmul_rb4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row0 = wg.y * 8u;
    let col0 = (wg.x * 64u + lid.x) * 8u;
    if (row0 >= p.m || col0 >= p.n) {
        return;
    }
    let acc = rb4_sums(row0, col0, k_range(0u));
    for (var i = 0u; i < 8u; i++) {
        for (var j = 0u; j < 8u; j++) {
            store(row0 + i, col0 + j, acc[i * 2u + j / 4u][j % 4u]);
        }
    }
}

@compute @workgroup_size(64)
fn matmul_rb4_part(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row0 = wg.y * 8u;
    let col0 = (wg.x * 64u + lid.x) * 8u;
    if (row0 >= p.m || col0 >= p.n) {
        return;
    }
    let acc = rb4_sums(row0, col0, k_range(wg.z));
    for (var i = 0u; i < 8u; i++) {
        for (var j = 0u; j < 8u; j++) {
            store_part(wg.z, row0 + i, col0 + j, acc[i * 2u + j / 4u][j % 4u]);
        }
    }
}
