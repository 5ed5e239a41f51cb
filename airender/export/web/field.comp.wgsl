// The time-of-day field f(x, y, t) for one hour (u.hour), one invocation per pixel. The model's constants
// (sizes, parameter offsets, hash-grid levels) are declared above this line by the exporter, which also
// keeps only the lines of the conditional blocks that apply to the model (no directive is left).
// Weights live in `params`, hash-grid tables in `tables` (storage buffers of vec4<f32>, the same data as
// the GLSL path's textures, row by row). Output: `rgb[y * width + x]` = (display value, 1): sRGB in
// [0, 1] for LDR data, linear radiance for HDR data, pixels row-major from the top; with u.linear = 1 linear
// light for both (the frames the passes of the network between the hours read: web/between.comp.wgsl).

struct Uniforms {
    hour: f32,    // hour of day (fractional, periodic)
    width: u32,   // output size in pixels
    height: u32,
    linear: u32,  // 1: linear light instead of the display value (the frames the network between the hours reads)
}

@group(0) @binding(0) var<uniform> u: Uniforms;
#if PARAMS_F16
// Reduced precision (the exporter's flags PARAMS_F16, WEIGHTS_I8, TABLES_F16, TABLES_I8, BASELINE_U8,
// FEATURES_F16): a texel of float16 values is a vec2<u32> (two halves a word, the first in the low bits),
// one of int8 or uint8 values a u32 (the first in the low byte); int8 weight matrices are in `weights`
// with one scale per row in `wscale`; int8 tables are scaled per level by the grid functions.
@group(0) @binding(1) var<storage, read> params: array<vec2<u32>>;
#else
@group(0) @binding(1) var<storage, read> params: array<vec4<f32>>;
#endif
#if HAS_TABLES
#if TABLES_F16
@group(0) @binding(2) var<storage, read> tables: array<vec2<u32>>;
#elif TABLES_I8
@group(0) @binding(2) var<storage, read> tables: array<u32>;
#else
@group(0) @binding(2) var<storage, read> tables: array<vec4<f32>>;
#endif
#endif
#if RESIDUAL
#if BASELINE_U8
@group(0) @binding(3) var<storage, read> baseline: array<u32>;
#else
@group(0) @binding(3) var<storage, read> baseline: array<vec4<f32>>;
#endif
#endif
#if ENCODER
#if FEATURES_F16
@group(0) @binding(4) var<storage, read> features: array<vec2<u32>>;
#else
@group(0) @binding(4) var<storage, read> features: array<vec4<f32>>;
#endif
#endif
@group(0) @binding(5) var<storage, read_write> rgb: array<vec4<f32>>;
#if WEIGHTS_I8
@group(0) @binding(6) var<storage, read> weights: array<u32>;
@group(0) @binding(7) var<storage, read> wscale: array<f32>;
#endif

#if ANY_F16
// four float16 values, two a word
fn unpack_half4(w: vec2<u32>) -> vec4<f32> { return vec4<f32>(unpack2x16float(w.x), unpack2x16float(w.y)); }
#endif
#if ANY_I8
// four int8 values q (the first in the low byte), as f32
fn unpack_int8x4(w: u32) -> vec4<f32> {
    let s = bitcast<i32>(w);
    return vec4<f32>(f32(extractBits(s, 0u, 8u)), f32(extractBits(s, 8u, 8u)), f32(extractBits(s, 16u, 8u)),
                     f32(extractBits(s, 24u, 8u)));
}
#endif
#if WEIGHTS_I8
// texel i of the parameters: i >> 20 == 0: params (biases, time codes); else the int8 matrix m = i >> 20
// in weights, times the scale of its row (wscale)
fn P4(i: i32) -> vec4<f32> {
    let m = i >> 20u;
    let t = i & 1048575;
    if (m == 0) { return unpack_half4(params[t]); }
    return unpack_int8x4(weights[Q_START[m] + t]) * wscale[Q_SCALE0[m] + t / Q_TPR[m]];
}
fn P1(i: i32) -> f32 { return P4(i >> 2u)[i & 3]; }
#elif PARAMS_F16
fn P4(i: i32) -> vec4<f32> { return unpack_half4(params[i]); }
fn P1(i: i32) -> f32 { return P4(i >> 2u)[i & 3]; }
#else
fn P4(i: i32) -> vec4<f32> { return params[i]; }
fn P1(i: i32) -> f32 { return params[i >> 2u][i & 3]; }
#endif
#if HAS_TABLES
#if TABLES_F16
fn T4(i: i32) -> vec4<f32> { return unpack_half4(tables[i]); }
#elif TABLES_I8
fn T4(i: i32) -> vec4<f32> { return unpack_int8x4(tables[i]); }
#else
fn T4(i: i32) -> vec4<f32> { return tables[i]; }
#endif
#endif

// x mod y with the result's sign of y (GLSL mod, numpy's %)
fn fmod(x: f32, y: f32) -> f32 { return x - y * floor(x / y); }

//@GRIDS

var<private> g_static: array<vec4<f32>, S4>;  // time-invariant MLP inputs
var<private> g_first: array<vec4<f32>, H4>;   // first layer's pre-activation from them (bias included)

fn act(v: f32) -> f32 {
#if SINE
    return sin(W0 * v);
#else
    return max(v, 0.0);
#endif
}

fn srgb_to_linear(v: vec3<f32>) -> vec3<f32> {
    let high = pow((max(v, vec3<f32>(0.04045)) + 0.055) / 1.055, vec3<f32>(2.4));
    return select(high, v / 12.92, v <= vec3<f32>(0.04045));
}

fn linear_to_srgb(x: vec3<f32>) -> vec3<f32> {
    let high = 1.055 * pow(max(x, vec3<f32>(0.0031308)), vec3<f32>(1.0 / 2.4)) - 0.055;
    return select(high, 12.92 * x, x <= vec3<f32>(0.0031308));
}

fn to_linear(v: vec3<f32>) -> vec3<f32> {
#if TRANSFORM == 0
    return srgb_to_linear(v);
#elif TRANSFORM == 1
    return exp(v) - 1.0;
#else
    return v;
#endif
}

fn from_linear(v: vec3<f32>) -> vec3<f32> {
#if TRANSFORM == 0
    return linear_to_srgb(v);
#elif TRANSFORM == 1
    return log(1.0 + max(v, vec3<f32>(-0.999)));
#else
    return v;
#endif
}

fn to_display(v: vec3<f32>) -> vec3<f32> {
#if TRANSFORM == 0
    return clamp(v, vec3<f32>(0.0), vec3<f32>(1.0));
#elif TRANSFORM == 1
    return max(exp(v) - 1.0, vec3<f32>(0.0));
#else
    return max(v, vec3<f32>(0.0));
#endif
}

// Bilinear taps at pixel centres uv of an image of `size` (torch grid_sample, align_corners=False, border):
// (x0, y0, x1, y1) and the fractions in f.
fn bilinear_taps(uv: vec2<f32>, size: vec2<i32>, f: ptr<function, vec2<f32>>) -> vec4<i32> {
    let g = uv * 2.0 - 1.0;
    let i = clamp(((g + 1.0) * vec2<f32>(size) - 1.0) / 2.0, vec2<f32>(0.0), vec2<f32>(size - 1));
    let i0 = floor(i);
    *f = i - i0;
    let a = vec2<i32>(i0);
    let b = min(a + 1, size - 1);
    return vec4<i32>(a, b);
}

#if RESIDUAL
#if BASELINE_U8
fn base_at(x: i32, y: i32) -> vec3<f32> { return unpack4x8unorm(baseline[y * BASE_W + x]).xyz; }
#else
fn base_at(x: i32, y: i32) -> vec3<f32> { return baseline[y * BASE_W + x].xyz; }
#endif

// The residual baseline of output rows 3 s..3 s+2 (`baseline` holds one frame per light source, stacked).
fn baseline_at(uv: vec2<f32>, s: i32) -> vec3<f32> {
    var f: vec2<f32>;
    let t = bilinear_taps(uv, vec2<i32>(BASE_W, BASE_H), &f) + vec4<i32>(0, s * BASE_H, 0, s * BASE_H);
    let top = base_at(t.x, t.y) * (1.0 - f.x) + base_at(t.z, t.y) * f.x;
    let bottom = base_at(t.x, t.w) * (1.0 - f.x) + base_at(t.z, t.w) * f.x;
    return top * (1.0 - f.y) + bottom * f.y;
}
#endif

#if ENCODER
#if FEATURES_F16
fn F4(i: i32) -> vec4<f32> { return unpack_half4(features[i]); }
#else
fn F4(i: i32) -> vec4<f32> { return features[i]; }
#endif

fn encoder_features(uv: vec2<f32>) {
    var f: vec2<f32>;
    let t = bilinear_taps(uv, vec2<i32>(ENC_W, ENC_H), &f);
    for (var c = 0; c < ENC_C4; c++) {
        let top = F4((t.y * ENC_W + t.x) * ENC_C4 + c) * (1.0 - f.x) + F4((t.y * ENC_W + t.z) * ENC_C4 + c) * f.x;
        let bottom = F4((t.w * ENC_W + t.x) * ENC_C4 + c) * (1.0 - f.x) + F4((t.w * ENC_W + t.z) * ENC_C4 + c) * f.x;
        let v = top * (1.0 - f.y) + bottom * f.y;
        for (var e = 0; e < 4; e++) {
            let j = c * 4 + e;
            if (j < ENC_C) { g_static[j >> 2u][j & 3] = v[e]; }
        }
    }
}
#endif

#if XY_KIND == 1
fn xy_fourier(uv: vec2<f32>, first: i32) {
    let p = uv * 2.0 - 1.0;
    var o = first;
#if XY_INCLUDE_INPUT
    g_static[o >> 2u][o & 3] = p.x;
    g_static[(o + 1) >> 2u][(o + 1) & 3] = p.y;
    o += 2;
#endif
    for (var d = 0; d < 2; d++) {
        for (var k = 0; k < XY_OCTAVES; k++) {
            let a = p[d] * XY_FREQS[k];
            let js = o + d * XY_OCTAVES + k;
            let jc = o + 2 * XY_OCTAVES + d * XY_OCTAVES + k;
            g_static[js >> 2u][js & 3] = sin(a);
            g_static[jc >> 2u][jc & 3] = cos(a);
        }
    }
}
#endif

fn time_code(t: f32) -> array<vec4<f32>, C4> {
    var code: array<vec4<f32>, C4>;
    let w = fmod(t, 24.0);
#if TIME_SPLINE
    let u_ = w / 24.0 * f32(SPLINE_KNOTS);
    let i = floor(u_);
    let s = u_ - i;
    var weights = array<f32, 4>((1.0 - s) * (1.0 - s) * (1.0 - s) / 6.0,
                                (3.0 * s * s * s - 6.0 * s * s + 4.0) / 6.0,
                                (-3.0 * s * s * s + 3.0 * s * s + 3.0 * s + 1.0) / 6.0,
                                s * s * s / 6.0);
    for (var k = 0; k < 4; k++) {
        let knot = ((i32(i) + k - 1) % SPLINE_KNOTS + SPLINE_KNOTS) % SPLINE_KNOTS;
        for (var d = 0; d < C4; d++) { code[d] += P4(SPLINE_CODES + knot * C4 + d) * weights[k]; }
    }
#else
    for (var k = 0; k < TIME_HARMONICS; k++) {
        let a = w * TIME_FREQS[k];
        let kc = k + TIME_HARMONICS;
        code[k >> 2u][k & 3] = sin(a);
        code[kc >> 2u][kc & 3] = cos(a);
    }
#endif
    return code;
}

#if TIME_NET
var<private> fh: array<vec4<f32>, FH4>;  // FiLM generator's hidden layer at the hour being decoded

fn film_out(r: i32) -> f32 {
    var a = P1(B_F2 * 4 + r);
    for (var k = 0; k < FH4; k++) { a += dot(P4(W_F2 + r * FH4 + k), fh[k]); }
    return a;
}
#endif

#if BASIS
var<private> g_basis: array<vec4<f32>, R4>;  // the basis decoder's K values of this pixel (time-free)

// The basis decoder's time-free MLP from g_first: its hidden layers, then the basis layer.
fn basis_values() {
    var h: array<vec4<f32>, H4>;
    for (var j = 0; j < HIDDEN; j++) { h[j >> 2u][j & 3] = act(g_first[j >> 2u][j & 3]); }
    for (var i = 1; i < LAYERS; i++) {
        var nh: array<vec4<f32>, H4>;
        for (var j = 0; j < HIDDEN; j++) {
            var v = P1(B_HID[i] * 4 + j);
            for (var k = 0; k < H4; k++) { v += dot(P4(W_HID[i] + j * H4 + k), h[k]); }
            nh[j >> 2u][j & 3] = act(v);
        }
        h = nh;
    }
    for (var j = 0; j < RANK; j++) {
        var v = P1(B_BASIS * 4 + j);
        for (var k = 0; k < H4; k++) { v += dot(P4(W_BASIS + j * H4 + k), h[k]); }
        g_basis[j >> 2u][j & 3] = v;
    }
}

// The basis decoder's outputs base..base+2 at hour t: (W + dW(t)) b + c + dc(t), dW and dc from the
// coefficient MLP.
fn raw_at(t: f32, uv: vec2<f32>, base: i32) -> vec3<f32> {
    var code = time_code(t);
    for (var i = 0; i < FILM_HIDDEN; i++) {
        var a = P1(B_F0 * 4 + i);
        for (var k = 0; k < C4; k++) { a += dot(P4(W_F0 + i * C4 + k), code[k]); }
        fh[i >> 2u][i & 3] = a / (1.0 + exp(-a));
    }
    var res: vec3<f32>;
    for (var c = 0; c < 3; c++) {
        let r = base + c;
        var v = P1(B_OUT * 4 + r) + film_out(OUTPUTS * RANK + r);
        for (var j = 0; j < RANK; j++) {
            v += (P1((W_OUT + r * R4) * 4 + j) + film_out(r * RANK + j)) * g_basis[j >> 2u][j & 3];
        }
        res[c] = v;
    }
    return res;
}
#else
// The MLP outputs base..base+2 at hour t for the pixel whose static pre-activation is g_first.
fn raw_at(t: f32, uv: vec2<f32>, base: i32) -> vec3<f32> {
    var code = time_code(t);
    var pre = g_first;
#if TIME_IN_MLP
    for (var j = 0; j < HIDDEN; j++) {
        var a = 0.0;
        for (var k = 0; k < C4; k++) { a += dot(P4(W_L0T + j * C4 + k), code[k]); }
        pre[j >> 2u][j & 3] += a;
    }
#endif
#if XYT_GRID
    var g3 = grid_xyt(vec3<f32>(uv, fmod(t, 24.0) / 24.0));
    for (var j = 0; j < HIDDEN; j++) {
        var a = 0.0;
        for (var k = 0; k < XYT_F4; k++) { a += dot(P4(W_L0G + j * XYT_F4 + k), g3[k]); }
        pre[j >> 2u][j & 3] += a;
    }
#endif
#if FILM
    for (var i = 0; i < FILM_HIDDEN; i++) {
        var a = P1(B_F0 * 4 + i);
        for (var k = 0; k < C4; k++) { a += dot(P4(W_F0 + i * C4 + k), code[k]); }
        fh[i >> 2u][i & 3] = a / (1.0 + exp(-a));
    }
#endif
    var h: array<vec4<f32>, H4>;
    for (var j = 0; j < HIDDEN; j++) {
        var v = pre[j >> 2u][j & 3];
#if FILM
        v = v * (1.0 + film_out(j)) + film_out(HIDDEN + j);
#endif
        h[j >> 2u][j & 3] = act(v);
    }
    for (var i = 1; i < LAYERS; i++) {
        var nh: array<vec4<f32>, H4>;
        for (var j = 0; j < HIDDEN; j++) {
            var v = P1(B_HID[i] * 4 + j);
            for (var k = 0; k < H4; k++) { v += dot(P4(W_HID[i] + j * H4 + k), h[k]); }
#if FILM
            v = v * (1.0 + film_out(2 * i * HIDDEN + j)) + film_out((2 * i + 1) * HIDDEN + j);
#endif
            nh[j >> 2u][j & 3] = act(v);
        }
        h = nh;
    }
    var res: vec3<f32>;
    for (var c = 0; c < 3; c++) {
        var v = P1(B_OUT * 4 + base + c);
        for (var k = 0; k < H4; k++) { v += dot(P4(W_OUT + (base + c) * H4 + k), h[k]); }
        res[c] = v;
    }
    return res;
}
#endif

#if LIGHT_SWITCH
fn lamp_image(uv: vec2<f32>) -> vec3<f32> {
    var lin: array<vec4<f32>, LAMP_IN4>;
    for (var j = 0; j < STATIC_DIM; j++) { lin[j >> 2u][j & 3] = g_static[j >> 2u][j & 3]; }
#if LAMP_GRID
    var lg4 = grid_lamp(vec3<f32>(uv, 0.0));
    for (var j = 0; j < LAMP_GRID_DIM; j++) {
        let o = STATIC_DIM + j;
        lin[o >> 2u][o & 3] = lg4[j >> 2u][j & 3];
    }
#endif
    var hid: array<vec4<f32>, LH4>;
    for (var j = 0; j < LAMP_HIDDEN; j++) {
        var a = P1(B_LAMP0 * 4 + j);
        for (var k = 0; k < LAMP_IN4; k++) { a += dot(P4(W_LAMP0 + j * LAMP_IN4 + k), lin[k]); }
        hid[j >> 2u][j & 3] = max(a, 0.0);
    }
    var lamp: vec3<f32>;
    for (var c = 0; c < 3; c++) {
        var a = P1(B_LAMP2 * 4 + c);
        for (var k = 0; k < LH4; k++) { a += dot(P4(W_LAMP2 + c * LH4 + k), hid[k]); }
        lamp[c] = select(log(1.0 + exp(a)), a, a > 20.0);
    }
    return lamp;
}
#endif

#if SUN
// the sun term (airender/nn/sun_term.py): direct sunlight in linear light at hour t
fn softplus1(a: f32) -> f32 { return select(log(1.0 + exp(a)), a, a > 20.0); }
fn sigmoid1(a: f32) -> f32 { return 1.0 / (1.0 + exp(-a)); }

fn sun_path_row(r: i32) -> vec3<f32> { return vec3<f32>(SUN_PATH[3 * r], SUN_PATH[3 * r + 1], SUN_PATH[3 * r + 2]); }

fn sun_direction(t: f32) -> vec3<f32> {
    let angle = fmod(t, 24.0) * (6.283185307179586 / 24.0);
    var raw = sun_path_row(0);
    for (var k = 1; k <= SUN_HARMONICS; k++) {
        raw += cos(f32(k) * angle) * sun_path_row(k) + sin(f32(k) * angle) * sun_path_row(SUN_HARMONICS + k);
    }
    return raw / max(length(raw), 1e-6);
}

fn sun_light(t: f32) -> vec3<f32> {
    var hid: array<vec4<f32>, SH4>;
    for (var j = 0; j < SUN_HIDDEN; j++) {
        var a = P1(B_SR0 * 4 + j);
        for (var k = 0; k < S4; k++) { a += dot(P4(W_SR0 + j * S4 + k), g_static[k]); }
        hid[j >> 2u][j & 3] = max(a, 0.0);
    }
    var response: array<f32, 6>;
    for (var c = 0; c < 6; c++) {
        var a = P1(B_SR2 * 4 + c);
        for (var k = 0; k < SH4; k++) { a += dot(P4(W_SR2 + c * SH4 + k), hid[k]); }
        response[c] = a;
    }
    let albedo = vec3<f32>(softplus1(response[0]), softplus1(response[1]), softplus1(response[2]));
    let normal = vec3<f32>(response[3], response[4], response[5]);
    let d = sun_direction(t);
    let azimuth = atan2(d.y, d.x);
    var dir4 = array<vec4<f32>, 2>(vec4<f32>(d, cos(azimuth)),
                                   vec4<f32>(sin(azimuth), cos(2.0 * azimuth), sin(2.0 * azimuth), 0.0));
    var h1: array<vec4<f32>, SH4>;
    var h2: array<vec4<f32>, SH4>;
    for (var j = 0; j < SUN_HIDDEN; j++) {
        var a = P1(B_SV0 * 4 + j);
        for (var k = 0; k < S4; k++) { a += dot(P4(W_SV0S + j * S4 + k), g_static[k]); }
        for (var k = 0; k < 2; k++) { a += dot(P4(W_SV0D + j * 2 + k), dir4[k]); }
        h1[j >> 2u][j & 3] = max(a, 0.0);
    }
    for (var j = 0; j < SUN_HIDDEN; j++) {
        var a = P1(B_SV2 * 4 + j);
        for (var k = 0; k < SH4; k++) { a += dot(P4(W_SV2 + j * SH4 + k), h1[k]); }
        h2[j >> 2u][j & 3] = max(a, 0.0);
    }
    var v = P1(B_SV4 * 4);
    for (var k = 0; k < SH4; k++) { v += dot(P4(W_SV4 + k), h2[k]); }
    let elevation = asin(clamp(d.z, -1.0, 1.0));
    var curve: array<vec4<f32>, SC4>;
    for (var j = 0; j < SUN_CURVE; j++) {
        curve[j >> 2u][j & 3] = max(P1(B_SI0 * 4 + j) + P4(W_SI0 + j).x * elevation, 0.0);
    }
    var strength: vec3<f32>;
    for (var c = 0; c < 3; c++) {
        var a = P1(B_SI2 * 4 + c);
        for (var k = 0; k < SC4; k++) { a += dot(P4(W_SI2 + c * SC4 + k), curve[k]); }
        strength[c] = softplus1(a);
    }
    strength *= sigmoid1(elevation / SUN_DAY_FADE);
    return strength * albedo * max(dot(normal, d), 0.0) * sigmoid1(v);
}
#endif

#if HAS_KNOTS
// The trained hours before and after hour t (cyclically) and the weight of the later one (0 at a trained hour).
fn knot_weight(t: f32, before: ptr<function, i32>, after: ptr<function, i32>) -> f32 {
    let wrapped = fmod(t, 24.0);
    var next = 0;
    for (var k = 0; k < N_KNOTS; k++) {
        if (KNOTS[k] <= wrapped) { next = k + 1; }
    }
    *before = (next - 1 + N_KNOTS) % N_KNOTS;
    *after = next % N_KNOTS;
    var span = fmod(KNOTS[*after] - KNOTS[*before], 24.0);
    if (span == 0.0) { span = 24.0; }
    return fmod(wrapped - KNOTS[*before], 24.0) / span;
}
#endif

// The MLP outputs base..base+2 at hour t, blended between the neighbouring trained hours with TIME_BLEND.
fn blended_at(t: f32, uv: vec2<f32>, base: i32) -> vec3<f32> {
#if TIME_BLEND
    var before: i32;
    var after: i32;
    let w = knot_weight(t, &before, &after);
    var raw = raw_at(KNOTS[before], uv, base);
    if (w > 0.0) { raw += w * (raw_at(KNOTS[after], uv, base) - raw); }
    return raw;
#else
    return raw_at(t, uv, base);
#endif
}

#if SOURCES
// On (1) or off (0) of light source s at hour t: its state at a trained hour; between two, on unless off at both.
fn source_on(s: i32, t: f32) -> f32 {
    var before: i32;
    var after: i32;
    let w = knot_weight(t, &before, &after);
    let lit = SOURCE_ON[s * N_KNOTS + before] == 1 || (SOURCE_ON[s * N_KNOTS + after] == 1 && w > 0.0);
    return select(0.0, 1.0, lit);
}
#endif

@compute @workgroup_size(WORKGROUP_X, WORKGROUP_Y, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    if (gid.x >= u.width || gid.y >= u.height) {
        return;
    }
    let uv = vec2<f32>((f32(gid.x) + 0.5) / f32(u.width), (f32(gid.y) + 0.5) / f32(u.height));
    var o = 0;
#if ENCODER
    encoder_features(uv);
    o = ENC_C;
#endif
#if XY_KIND == 1
    xy_fourier(uv, o);
#elif XY_KIND == 2
    var gx = grid_xy(vec3<f32>(uv, 0.0));
    for (var j = 0; j < XY_DIM; j++) {
        let s = o + j;
        g_static[s >> 2u][s & 3] = gx[j >> 2u][j & 3];
    }
#endif
    for (var j = 0; j < HIDDEN; j++) {
        var a = P1(B_L0 * 4 + j);
        for (var k = 0; k < S4; k++) { a += dot(P4(W_L0S + j * S4 + k), g_static[k]); }
        g_first[j >> 2u][j & 3] = a;
    }
#if BASIS
    basis_values();
#endif
    let t = u.hour;
#if SOURCES
    var lin = vec3<f32>(0.0);
    for (var s = 0; s < SOURCES; s++) {
        var v = blended_at(t, uv, 3 * s);
#if RESIDUAL
        v += baseline_at(uv, s);
#endif
#if SUN
        if (s == SUN_SOURCE) { v = from_linear(sun_light(t)); }
#endif
        lin += to_linear(max(v * source_on(s, t), vec3<f32>(0.0)));
    }
    var value = from_linear(lin);
#else
    var value = blended_at(t, uv, 0);
#if RESIDUAL
    value += baseline_at(uv, 0);
#endif
#if LIGHT_SWITCH
    let hour = fmod(t, 24.0);
    let gate = select(0.0, 1.0, hour < LIGHT_OFF || hour > LIGHT_ON);
#if SUN
    value = from_linear(to_linear(value) + gate * lamp_image(uv) + sun_light(t));
#else
    value = from_linear(to_linear(value) + gate * lamp_image(uv));
#endif
#elif SUN
    value = from_linear(to_linear(value) + sun_light(t));
#endif
#endif
    let display = to_display(value);
#if HDR
    rgb[gid.y * u.width + gid.x] = vec4<f32>(display, 1.0);
#else
    if (u.linear == 1u) {
        rgb[gid.y * u.width + gid.x] = vec4<f32>(srgb_to_linear(clamp(display, vec3<f32>(0.0), vec3<f32>(1.0))), 1.0);
        return;
    }
    rgb[gid.y * u.width + gid.x] = vec4<f32>(display, 1.0);
#endif
}
