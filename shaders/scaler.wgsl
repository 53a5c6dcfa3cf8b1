// Dynamic loss scaling for mixed-precision training, entirely on the device.
//
// The scaler state is four u32: [scale (f32 bits), non-finite flag, clean steps, skipped
// steps]. Kernels read it in place, so a training step never reads it back:
// scale_in_place: x *= scale (the loss gradient, before backward).
// nonfinite:      sets the flag if any element of x is inf or NaN (a gradient check).
// init:           a fresh state (no upload needed).
// update:         one thread: flag set ⇒ scale /= 2, skipped += 1, clean = 0; else clean += 1
//                 and scale *= 2 after `growth_interval` clean steps; then clears the flag.
// The optimizer kernels (optim.wgsl) skip their update while the flag is set and divide the
// gradient by the scale. Bindings: 1 = x (read_write), 2 = state (atomic).

struct Params {
    n: u32,
    growth_interval: u32,
    init_bits: u32,
    _p0: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> x: array<T>;
@group(0) @binding(2) var<storage, read_write> state: array<atomic<u32>, 4>;

// A fresh state with scale bitcast<f32>(init_bits), written by a kernel so that creating a
// scaler uploads nothing.
@compute @workgroup_size(1)
fn init() {
    atomicStore(&state[0], p.init_bits);
    atomicStore(&state[1], 0u);
    atomicStore(&state[2], 0u);
    atomicStore(&state[3], 0u);
}

@compute @workgroup_size(256)
fn scale_in_place(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i < p.n) {
        x[i] = T(f32(x[i]) * bitcast<f32>(atomicLoad(&state[0])));
    }
}

@compute @workgroup_size(256)
fn nonfinite(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i < p.n) {
        // No isinf/isnan in WGSL: an all-ones exponent marks both (f16 widens exactly).
        let bits = bitcast<u32>(f32(x[i]));
        if ((bits & 0x7f800000u) == 0x7f800000u) {
            atomicOr(&state[1], 1u);
        }
    }
}

@compute @workgroup_size(1)
fn update() {
    var scale = bitcast<f32>(atomicLoad(&state[0]));
    var clean = atomicLoad(&state[2]);
    if (atomicLoad(&state[1]) != 0u) {
        scale = scale * 0.5;
        clean = 0u;
        atomicAdd(&state[3], 1u);
    } else {
        clean = clean + 1u;
        if (clean >= p.growth_interval) {
            scale = scale * 2.0;
            clean = 0u;
        }
    }
    atomicStore(&state[0], bitcast<u32>(scale));
    atomicStore(&state[2], clean);
    atomicStore(&state[1], 0u);
}
