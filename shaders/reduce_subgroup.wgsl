
// ---- subgroup reductions (reduce_subgroup.wgsl, appended to reduce.wgsl) -------------------
// The workgroup sums of sum_cols, sum_cols_part, sum_cols_f32 and count_correct with subgroup
// operations, used where the adapter has `Features::SUBGROUP` with subgroups of 4 to 128
// invocations (gpu/ops `use_subgroups`); the barrier trees above are the fallback and the
// reference the tests compare them with. (naga takes subgroup operations from the device's
// SUBGROUP feature, without WGSL's `enable subgroups;`.)
//
// Each subgroup adds its values with one subgroupAdd; its first lane stores the sum in
// workgroup memory; after one barrier every subgroup adds those 256 / size sums (lane-strided,
// then one more subgroupAdd), so two subgroup operations and one barrier replace the eight
// barriers of the tree. Subgroup s is taken to be invocations [s·size, (s + 1)·size) of the
// one-dimensional workgroup, as Vulkan, Metal and D3D12 drivers lay them out.

fn workgroup_sum_sg(lid: u32, lane: u32, size: u32, acc: f32) -> f32 {
    let s = subgroupAdd(acc);
    if (lane == 0u) {
        part[lid / size] = s;
    }
    workgroupBarrier();
    var v = 0.0;
    for (var i = lane; i < 256u / size; i += size) {
        v += part[i];
    }
    return subgroupAdd(v);
}

@compute @workgroup_size(256)
fn sum_cols_sg(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32,
               @builtin(subgroup_invocation_id) lane: u32, @builtin(subgroup_size) size: u32) {
    let o = wg.x + wg.y * nwg.x;
    if (o >= p.outputs) {
        return; // uniform: the whole workgroup shares `o`
    }
    let total = workgroup_sum_sg(lid, lane, size, x_row_share(o, lid));
    if (lid == 0u) {
        out[o] = T(p.alpha * total);
    }
}

@compute @workgroup_size(256)
fn sum_cols_part_sg(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) lid: u32,
                    @builtin(subgroup_invocation_id) lane: u32, @builtin(subgroup_size) size: u32) {
    let o = wg.x + wg.y * nwg.x;
    if (o >= p.outputs) {
        return;
    }
    let total = workgroup_sum_sg(lid, lane, size, x_row_share(o, lid));
    if (lid == 0u) {
        part_out[o] = total;
    }
}

@compute @workgroup_size(256)
fn sum_cols_f32_sg(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) lid: u32,
                   @builtin(subgroup_invocation_id) lane: u32, @builtin(subgroup_size) size: u32) {
    let o = wg.x + wg.y * nwg.x;
    if (o >= p.outputs) {
        return;
    }
    let total = workgroup_sum_sg(lid, lane, size, part_row_share(o, lid));
    if (lid == 0u) {
        out[o] = T(p.alpha * total);
    }
}

@compute @workgroup_size(256)
fn count_correct_sg(@builtin(local_invocation_index) lid: u32,
                    @builtin(subgroup_invocation_id) lane: u32, @builtin(subgroup_size) size: u32) {
    var n = 0u;
    for (var r = lid; r < p.rows; r += 256u) {
        if (row_argmax(r) == labels[r]) {
            n += 1u;
        }
    }
    let s = subgroupAdd(n);
    if (lane == 0u) {
        part_u[lid / size] = s;
    }
    workgroupBarrier();
    var v = 0u;
    for (var i = lane; i < 256u / size; i += size) {
        v += part_u[i];
    }
    let total = subgroupAdd(v);
    if (lid == 0u) {
        out_u[0] = select(0u, out_u[0], p.accumulate != 0u) + total;
    }
}
