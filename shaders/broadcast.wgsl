// Numpy-style broadcasting of a small operand b against a big one, both padded to rank 4.
//
// bcast:     out = a op b (op 0 add, 1 sub, 2 mul); one thread per element of the big
//            tensor; b is read through strides that are 0 on broadcast dimensions.
// sum_to:    its backward; one thread per element of b, summing (in f32) every element of
//            dy that maps to it. Deterministic: no atomics. Used while each b element sums at
//            most a block of dy elements (lavapipe stops an invocation's loops after 65,535
//            iterations).
// sum_to_part: past that, thread (g, j) sums block g of b element j's dy elements (the
//            reduced coordinates walked as one flat index, `op` = block) into the f32
//            partials part[g, j]; reduce.wgsl's column sums finish.
// Bindings: 1 = out (read_write), 2 = big operand (a or dy), 3 = b, 4 = part (f32).

struct Params {
    n: u32,
    bn: u32,
    op: u32,
    outputs: u32,
    dims: vec4<u32>,
    bdims: vec4<u32>,
    bstrides: vec4<u32>,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<T>;
@group(0) @binding(2) var<storage, read> big: array<T>;
@group(0) @binding(3) var<storage, read> small: array<T>;
@group(0) @binding(4) var<storage, read_write> part: array<f32>;

@compute @workgroup_size(256)
fn bcast(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= p.n) {
        return;
    }
    var rem = i;
    let i3 = rem % p.dims.w;
    rem /= p.dims.w;
    let i2 = rem % p.dims.z;
    rem /= p.dims.z;
    let i1 = rem % p.dims.y;
    let i0 = rem / p.dims.y;
    let j = i0 * p.bstrides.x + i1 * p.bstrides.y + i2 * p.bstrides.z + i3 * p.bstrides.w;
    let a = big[i];
    let b = small[j];
    switch p.op {
        case 0u: { out[i] = a + b; }
        case 1u: { out[i] = a - b; }
        default: { out[i] = a * b; }
    }
}

// Coordinates of element j of b in b's shape.
fn b_coords(j: u32) -> vec4<u32> {
    var rem = j;
    var bc: vec4<u32>;
    bc.w = rem % p.bdims.w;
    rem /= p.bdims.w;
    bc.z = rem % p.bdims.z;
    rem /= p.bdims.z;
    bc.y = rem % p.bdims.y;
    bc.x = rem / p.bdims.y;
    return bc;
}

@compute @workgroup_size(256)
fn sum_to(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let j = gid.x + gid.y * nwg.x * 256u;
    if (j >= p.bn) {
        return;
    }
    // Coordinates of j in b's shape; on broadcast dims the loop covers the whole big dim.
    let bc = b_coords(j);
    let bcast = p.bdims != p.dims;
    let lo = select(bc, vec4<u32>(0u), bcast);
    let hi = select(bc + vec4<u32>(1u), p.dims, bcast);
    var acc = 0.0;
    for (var i0 = lo.x; i0 < hi.x; i0++) {
        for (var i1 = lo.y; i1 < hi.y; i1++) {
            for (var i2 = lo.z; i2 < hi.z; i2++) {
                let base = ((i0 * p.dims.y + i1) * p.dims.z + i2) * p.dims.w;
                for (var i3 = lo.w; i3 < hi.w; i3++) {
                    acc += f32(big[base + i3]);
                }
            }
        }
    }
    out[j] = T(acc);
}

@compute @workgroup_size(256)
fn sum_to_part(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let o = gid.x + gid.y * nwg.x * 256u;
    if (o >= p.outputs) {
        return;
    }
    let j = o % p.bn;
    let g = o / p.bn;
    let bc = b_coords(j);
    // Extents of the reduced coordinates (1 on the dimensions b keeps).
    let bcast = p.bdims != p.dims;
    let e = select(vec4<u32>(1u), p.dims, bcast);
    let total = e.x * e.y * e.z * e.w;
    let t0 = g * p.op;
    let t1 = min(t0 + p.op, total);
    var acc = 0.0;
    for (var t = t0; t < t1; t++) {
        var r = t;
        var c: vec4<u32>;
        c.w = r % e.w;
        r /= e.w;
        c.z = r % e.z;
        r /= e.z;
        c.y = r % e.y;
        c.x = r / e.y;
        let q = select(bc, c, bcast);
        acc += f32(big[((q.x * p.dims.y + q.y) * p.dims.z + q.z) * p.dims.w + q.w]);
    }
    part[o] = acc;
}
