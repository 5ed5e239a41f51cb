// The passes of the network between the hours (airender/export/web/between.py), one entry point per pass kind:
// input_pass, conv_pass, upsample_pass, blend_pass, each @workgroup_size(8, 8, 1), dispatched
// ceil(out_w / 8) x ceil(out_h / 8) x (out_c for conv_pass and upsample_pass, else 1). A tensor [C, h, w] is
// array<f32>, channel-major; a frame is the field shader's output (array<vec4<f32>> [H * W], read here as 4
// floats a pixel): linear light (uniform linear = 1) for the input pass, the display value for the output.
// Every pass uses one bind group layout: an unused binding holds any buffer that is not `dst`.

struct Pass {
    in_w: i32,       // input size (convolutions and upsampling)
    in_h: i32,
    ca: i32,         // channels of `a`
    cb: i32,         // channels of `b` (concatenated after those of `a`; 0: none)
    out_w: i32,      // output size
    out_h: i32,
    out_c: i32,      // output channels
    relu: i32,       // 1: ReLU after the convolution
    stride: i32,
    padding: i32,
    dilation: i32,
    offset: i32,     // the convolution's first float in `weights`: weight [C_out, C_in, 3, 3], then bias [C_out]
    s: f32,          // the fraction of the way from h0 to h1 (input pass)
    prior: f32,      // logit(clamp(s, 0.02, 0.98)) (blend pass)
    hdr: i32,        // 1: HDR data (the display value is linear radiance), 0: sRGB
    pad: i32,
}

@group(0) @binding(0) var<uniform> u: Pass;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> c: array<f32>;
@group(0) @binding(4) var<storage, read> d: array<f32>;
@group(0) @binding(5) var<storage, read> weights: array<f32>;
@group(0) @binding(6) var<storage, read_write> dst: array<f32>;

fn log_light(v: f32) -> f32 { return log(max(v, 0.0) + 1e-3); }

// a, b, c, d: the linear frames of the stored hour before h0, h0, h1 and the stored hour after h1 ->
// dst [16, H, W]: before (0-2), after (3-5), after - before, before - earlier, later - after (in logs), s (15).
@compute @workgroup_size(8, 8, 1)
fn input_pass(@builtin(global_invocation_id) gid: vec3<u32>) {
    let x = i32(gid.x);
    let y = i32(gid.y);
    if (x >= u.out_w || y >= u.out_h) { return; }
    let i = y * u.out_w + x;
    let n = u.out_w * u.out_h;
    for (var k = 0; k < 3; k++) {
        let earlier = log_light(a[4 * i + k]);
        let before = log_light(b[4 * i + k]);
        let after = log_light(c[4 * i + k]);
        let later = log_light(d[4 * i + k]);
        dst[k * n + i] = before;
        dst[(3 + k) * n + i] = after;
        dst[(6 + k) * n + i] = after - before;
        dst[(9 + k) * n + i] = before - earlier;
        dst[(12 + k) * n + i] = later - after;
    }
    dst[15 * n + i] = u.s;
}

// dst [out_c, out_h, out_w] = conv(a, or a and b concatenated) + bias, ReLU if u.relu.
@compute @workgroup_size(8, 8, 1)
fn conv_pass(@builtin(global_invocation_id) gid: vec3<u32>) {
    let x = i32(gid.x);
    let y = i32(gid.y);
    let o = i32(gid.z);
    if (x >= u.out_w || y >= u.out_h || o >= u.out_c) { return; }
    let cin = u.ca + u.cb;
    let n = u.in_w * u.in_h;
    var acc = weights[u.offset + u.out_c * cin * 9 + o];
    for (var ky = 0; ky < 3; ky++) {
        let iy = y * u.stride - u.padding + ky * u.dilation;
        if (iy < 0 || iy >= u.in_h) { continue; }
        for (var kx = 0; kx < 3; kx++) {
            let ix = x * u.stride - u.padding + kx * u.dilation;
            if (ix < 0 || ix >= u.in_w) { continue; }
            let p = iy * u.in_w + ix;
            for (var i = 0; i < cin; i++) {
                var v: f32;
                if (i < u.ca) { v = a[i * n + p]; } else { v = b[(i - u.ca) * n + p]; }
                acc += weights[u.offset + ((o * cin + i) * 3 + ky) * 3 + kx] * v;
            }
        }
    }
    if (u.relu == 1) { acc = max(acc, 0.0); }
    dst[(o * u.out_h + y) * u.out_w + x] = acc;
}

// dst [ca, out_h, out_w] = a [ca, in_h, in_w] resized bilinearly (align_corners=False).
@compute @workgroup_size(8, 8, 1)
fn upsample_pass(@builtin(global_invocation_id) gid: vec3<u32>) {
    let x = i32(gid.x);
    let y = i32(gid.y);
    let ch = i32(gid.z);
    if (x >= u.out_w || y >= u.out_h || ch >= u.ca) { return; }
    let src = max((vec2<f32>(f32(x), f32(y)) + 0.5) * (vec2<f32>(f32(u.in_w), f32(u.in_h))
                  / vec2<f32>(f32(u.out_w), f32(u.out_h))) - 0.5, vec2<f32>(0.0));
    let lo = min(vec2<i32>(floor(src)), vec2<i32>(u.in_w - 1, u.in_h - 1));
    let hi = min(lo + 1, vec2<i32>(u.in_w - 1, u.in_h - 1));
    let f = src - vec2<f32>(lo);
    let base = ch * u.in_w * u.in_h;
    let left = a[base + lo.y * u.in_w + lo.x] * (1.0 - f.y) + a[base + hi.y * u.in_w + lo.x] * f.y;
    let right = a[base + lo.y * u.in_w + hi.x] * (1.0 - f.y) + a[base + hi.y * u.in_w + hi.x] * f.y;
    dst[(ch * u.out_h + y) * u.out_w + x] = left * (1.0 - f.x) + right * f.x;
}

fn linear_to_srgb(x: vec3<f32>) -> vec3<f32> {
    let high = 1.055 * pow(max(x, vec3<f32>(0.0031308)), vec3<f32>(1.0 / 2.4)) - 0.055;
    return select(high, 12.92 * x, x <= vec3<f32>(0.0031308));
}

// a, b: the linear frames of h0 and h1; c: the logit [1, H, W] -> dst: the display frame, 4 floats a pixel
// (the field shader's output layout: sRGB for LDR data, linear radiance for HDR data; w = 1).
@compute @workgroup_size(8, 8, 1)
fn blend_pass(@builtin(global_invocation_id) gid: vec3<u32>) {
    let x = i32(gid.x);
    let y = i32(gid.y);
    if (x >= u.out_w || y >= u.out_h) { return; }
    let i = y * u.out_w + x;
    let w = 1.0 / (1.0 + exp(-(c[i] + u.prior)));
    let before = vec3<f32>(a[4 * i], a[4 * i + 1], a[4 * i + 2]);
    let value = before + w * (vec3<f32>(b[4 * i], b[4 * i + 1], b[4 * i + 2]) - before);
    var display = value;
    if (u.hdr == 0) { display = linear_to_srgb(clamp(value, vec3<f32>(0.0), vec3<f32>(1.0))); }
    dst[4 * i] = display.x;
    dst[4 * i + 1] = display.y;
    dst[4 * i + 2] = display.z;
    dst[4 * i + 3] = 1.0;
}
