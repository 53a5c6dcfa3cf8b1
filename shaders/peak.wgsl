// Microkernels that measure what an adapter can do, for the benchmarks' "% of peak" column.
//
// fma_peak: each thread runs 8 independent vec4 FMA chains for `iters` rounds (8·4·2 flops a
//           round), enough independent work to hide FMA latency; the result is written so the
//           compiler cannot drop the loop.
// (The copy bandwidth is measured with a buffer copy: `crate::bench::copy_bandwidth_gbs`.)
// Bindings: 1 = out (read_write).

struct Params {
    n: u32,
    iters: u32,
    _p0: u32,
    _p1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<vec4<f32>>;

@compute @workgroup_size(256)
fn fma_peak(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    let s = f32(i % 7u) * 1e-3;
    var a0 = vec4<f32>(s, s + 0.1, s + 0.2, s + 0.3);
    var a1 = a0 + 0.01;
    var a2 = a0 + 0.02;
    var a3 = a0 + 0.03;
    var a4 = a0 + 0.04;
    var a5 = a0 + 0.05;
    var a6 = a0 + 0.06;
    var a7 = a0 + 0.07;
    let b = vec4<f32>(0.9999);
    let c = vec4<f32>(1e-4);
    for (var k = 0u; k < p.iters; k++) {
        a0 = fma(a0, b, c);
        a1 = fma(a1, b, c);
        a2 = fma(a2, b, c);
        a3 = fma(a3, b, c);
        a4 = fma(a4, b, c);
        a5 = fma(a5, b, c);
        a6 = fma(a6, b, c);
        a7 = fma(a7, b, c);
    }
    if (i < p.n) {
        out[i] = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7;
    }
}
