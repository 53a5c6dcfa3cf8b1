// On-device data augmentation of a batch of images [N, C, H, W] in [0, 1]: a random affine
// map (rotation, scale, shift, optional horizontal flip) plus, optionally, an elastic
// displacement field (Simard et al. 2003), sampled bilinearly with zeros outside, then
// brightness and contrast, clamped to [0, 1]. Image i of the batch draws its parameters from
// the counter hash of (seed, offset + i), the same function as src/rng.rs, so the CPU reference
// (src/cpu/mod.rs `augment`) produces the same images. One thread per output pixel.
//
// Elastic field: uniform noise in [-1, 1) per pixel and direction, smoothed by a normalised
// Gaussian (sigma, truncated at `radius`), times alpha. The smoothing is separable: the entry
// point `elastic_rows` smooths along x for every row the vertical pass needs (H + 2·radius per
// image and direction) into `rows`; `augment_elastic` smooths those along y at its own pixel.
// Noise outside the image is drawn like noise inside, so the field has no border effect.
// Bindings: 1 = out (read_write), 2 = x, 3 = rows ([N, 2, H + 2·radius, W] f32).

struct Params {
    n: u32,
    c: u32,
    h: u32,
    w: u32,
    seed: u32,
    offset: u32,
    flip: u32,
    radius: u32,
    rotate: f32,
    scale: f32,
    shift: f32,
    brightness: f32,
    contrast: f32,
    alpha: f32,
    sigma: f32,
    _p3: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<T>;
@group(0) @binding(2) var<storage, read> x: array<T>;
@group(0) @binding(3) var<storage, read_write> rows: array<f32>;

// Chris Wellons' lowbias32, as src/rng.rs `hash_u32`.
fn hash_u32(v: u32) -> u32 {
    var h = v;
    h ^= h >> 16u;
    h *= 0x7feb352du;
    h ^= h >> 15u;
    h *= 0x846ca68bu;
    h ^= h >> 16u;
    return h;
}

// Draw j of image k in [-1, 1): as src/rng.rs `counter_uniform`, mapped.
fn draw(k: u32, j: u32) -> f32 {
    let h = hash_u32((k * 8u + j) + hash_u32(p.seed));
    return 2.0 * (f32(h >> 8u) * (1.0 / 16777216.0)) - 1.0;
}

fn pixel(base: u32, yy: i32, xx: i32) -> f32 {
    if (yy < 0 || xx < 0 || yy >= i32(p.h) || xx >= i32(p.w)) {
        return 0.0;
    }
    return f32(x[base + u32(yy) * p.w + u32(xx)]);
}

// Noise value (in [-1, 1)) of padded pixel `idx` (direction-major over [2, H + 2r, W + 2r]) of
// image k: as src/ops.rs `AugmentSpec::elastic_noise`.
fn noise(k: u32, idx: u32) -> f32 {
    let key = hash_u32(k + hash_u32(p.seed ^ 0x5bd1e995u));
    let h = hash_u32(idx + hash_u32(key));
    return 2.0 * (f32(h >> 8u) * (1.0 / 16777216.0)) - 1.0;
}

// Unnormalised Gaussian tap d and the sum of all taps (the normaliser).
fn tap(d: i32) -> f32 {
    let t = f32(d) / p.sigma;
    return exp(-0.5 * t * t);
}

fn tap_sum() -> f32 {
    var s = 0.0;
    for (var d = -i32(p.radius); d <= i32(p.radius); d++) {
        s += tap(d);
    }
    return s;
}

// rows[img, dir, yy, x] = Σ_d g(d) · noise(dir, yy, x + r + d) for yy over the padded rows.
@compute @workgroup_size(256)
fn elastic_rows(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    let r = p.radius;
    let ph = p.h + 2u * r;
    let pw = p.w + 2u * r;
    if (i >= p.n * 2u * ph * p.w) {
        return;
    }
    let xo = i % p.w;
    let yy = (i / p.w) % ph;
    let dir = (i / (p.w * ph)) % 2u;
    let img = i / (p.w * ph * 2u);
    let k = p.offset + img;
    let norm = tap_sum();
    let row = (dir * ph + yy) * pw;
    var s = 0.0;
    for (var d = -i32(r); d <= i32(r); d++) {
        s += tap(d) / norm * noise(k, row + u32(i32(xo + r) + d));
    }
    rows[i] = s;
}

@compute @workgroup_size(256)
fn augment(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= p.n * p.c * p.h * p.w) {
        return;
    }
    out[i] = T(transform(i, 0.0, 0.0));
}

@compute @workgroup_size(256)
fn augment_elastic(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    let plane = p.h * p.w;
    if (i >= p.n * p.c * plane) {
        return;
    }
    let img = i / (p.c * plane);
    let y = (i % plane) / p.w;
    let xo = i % p.w;
    let r = p.radius;
    let ph = p.h + 2u * r;
    let norm = tap_sum();
    var dx = 0.0;
    var dy = 0.0;
    for (var d = -i32(r); d <= i32(r); d++) {
        let g = tap(d) / norm;
        let yy = u32(i32(y + r) + d);
        dx += g * rows[((img * 2u) * ph + yy) * p.w + xo];
        dy += g * rows[((img * 2u + 1u) * ph + yy) * p.w + xo];
    }
    out[i] = T(transform(i, p.alpha * dx, p.alpha * dy));
}

// Output element i: the affine map of its pixel, displaced by (ex, ey) pixels, sampled, then
// brightness and contrast.
fn transform(i: u32, ex: f32, ey: f32) -> f32 {
    let plane = p.h * p.w;
    let img = i / (p.c * plane);
    let ch = (i / plane) % p.c;
    let y = (i % plane) / p.w;
    let xo = i % p.w;
    let k = p.offset + img;
    let theta = draw(k, 0u) * p.rotate * 0.017453292;
    let s = 1.0 + draw(k, 1u) * p.scale;
    let tx = draw(k, 2u) * p.shift;
    let ty = draw(k, 3u) * p.shift;
    let flip = p.flip != 0u && draw(k, 4u) < 0.0;
    let b = draw(k, 5u) * p.brightness;
    let c = 1.0 + draw(k, 6u) * p.contrast;
    let cx = (f32(p.w) - 1.0) * 0.5;
    let cy = (f32(p.h) - 1.0) * 0.5;
    var u = f32(xo) - cx;
    if (flip) {
        u = -u;
    }
    u -= tx;
    let v = f32(y) - cy - ty;
    let ct = cos(theta);
    let st = sin(theta);
    let sx = (ct * u + st * v) / s + cx + ex;
    let sy = (ct * v - st * u) / s + cy + ey;
    let x0 = floor(sx);
    let y0 = floor(sy);
    let wx = sx - x0;
    let wy = sy - y0;
    let xi = i32(x0);
    let yi = i32(y0);
    let base = (img * p.c + ch) * plane;
    let top = pixel(base, yi, xi) * (1.0 - wx) + pixel(base, yi, xi + 1) * wx;
    let bottom = pixel(base, yi + 1, xi) * (1.0 - wx) + pixel(base, yi + 1, xi + 1) * wx;
    let val = top * (1.0 - wy) + bottom * wy;
    return clamp((val - 0.5) * c + 0.5 + b, 0.0, 1.0);
}
