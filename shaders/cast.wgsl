// Conversions between f32 and f16, one thread per element. Compiled only where the adapter
// has SHADER_F16 (the pipeline cache instantiates it with `enable f16; alias T = f16;`).
// f32 -> f16 rounds to nearest even, as the `half` crate does on the CPU.
// Bindings: 1 = out_h (f16, read_write), 2 = in_f (f32); 3 = out_f (f32, read_write), 4 = in_h.

struct Params {
    n: u32,
    _p0: u32,
    _p1: u32,
    _p2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out_h: array<T>;
@group(0) @binding(2) var<storage, read> in_f: array<f32>;
@group(0) @binding(3) var<storage, read_write> out_f: array<f32>;
@group(0) @binding(4) var<storage, read> in_h: array<T>;

@compute @workgroup_size(256)
fn f32_to_f16(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i < p.n) {
        out_h[i] = T(in_f[i]);
    }
}

@compute @workgroup_size(256)
fn f16_to_f32(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i < p.n) {
        out_f[i] = f32(in_h[i]);
    }
}
