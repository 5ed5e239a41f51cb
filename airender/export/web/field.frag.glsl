// The time-of-day field f(x, y, t) for one hour (u_hour), evaluated per fragment. The model's constants
// (sizes, feature switches, parameter offsets, hash-grid levels) are defined above this line by the
// exporter; weights live in u_params, hash-grid tables in u_tables (RGBA32F, read with texelFetch).
// Output: sRGB in [0, 1] (LDR data as they are; HDR radiance through exposure and the sRGB curve); with
// u_linear = 1, linear light (RGBA32F targets; the passes of web/between.frag.glsl read it).

uniform sampler2D u_params;
#if HAS_TABLES
uniform sampler2D u_tables;
#endif
#if ENCODER
uniform sampler2D u_features;
#endif
#if RESIDUAL
uniform sampler2D u_baseline;
#endif
uniform float u_hour;     // hour of day (fractional, periodic)
uniform vec2 u_size;      // output size in pixels
uniform float u_exposure; // HDR preview exposure (unused for LDR data)
uniform int u_linear;     // 1: linear light, rows from the top (the frames the network between the hours reads)
out vec4 fragColor;

#define GET(a, i) a[(i) >> 2][(i) & 3]

vec4 P4(int i) { return texelFetch(u_params, ivec2(i % PARAMS_WIDTH, i / PARAMS_WIDTH), 0); }
float P1(int i) { return P4(i >> 2)[i & 3]; }
#if HAS_TABLES
vec4 T4(int i) { return texelFetch(u_tables, ivec2(i % TABLES_WIDTH, i / TABLES_WIDTH), 0); }
#endif

//@GRIDS

vec4 g_static[S4];  // time-invariant MLP inputs
vec4 g_first[H4];   // first layer's pre-activation from them (bias included)

float act(float v) {
#if SINE
    return sin(W0 * v);
#else
    return max(v, 0.0);
#endif
}

vec3 srgb_to_linear(vec3 v) {
    vec3 high = pow((max(v, vec3(0.04045)) + 0.055) / 1.055, vec3(2.4));
    return mix(high, v / 12.92, vec3(lessThanEqual(v, vec3(0.04045))));
}

vec3 linear_to_srgb(vec3 x) {
    vec3 high = 1.055 * pow(max(x, vec3(0.0031308)), vec3(1.0 / 2.4)) - 0.055;
    return mix(high, 12.92 * x, vec3(lessThanEqual(x, vec3(0.0031308))));
}

vec3 to_linear(vec3 v) {
#if TRANSFORM == 0
    return srgb_to_linear(v);
#elif TRANSFORM == 1
    return exp(v) - 1.0;
#else
    return v;
#endif
}

vec3 from_linear(vec3 v) {
#if TRANSFORM == 0
    return linear_to_srgb(v);
#elif TRANSFORM == 1
    return log(1.0 + max(v, vec3(-0.999)));
#else
    return v;
#endif
}

vec3 to_display(vec3 v) {
#if TRANSFORM == 0
    return clamp(v, 0.0, 1.0);
#elif TRANSFORM == 1
    return max(exp(v) - 1.0, vec3(0.0));
#else
    return max(v, vec3(0.0));
#endif
}

// Bilinear read of an image at pixel centres uv (torch grid_sample, align_corners=False, border).
ivec4 bilinear_taps(vec2 uv, ivec2 size, out vec2 f) {
    vec2 g = uv * 2.0 - 1.0;
    vec2 i = clamp(((g + 1.0) * vec2(size) - 1.0) / 2.0, vec2(0.0), vec2(size - 1));
    vec2 i0 = floor(i);
    f = i - i0;
    ivec2 a = ivec2(i0);
    ivec2 b = min(a + 1, size - 1);
    return ivec4(a, b);
}

#if RESIDUAL
// The residual baseline of output rows 3 s..3 s+2 (u_baseline holds one frame per light source, stacked).
vec3 baseline_at(vec2 uv, int s) {
    vec2 f;
    ivec4 t = bilinear_taps(uv, ivec2(BASE_W, BASE_H), f) + ivec4(0, s * BASE_H, 0, s * BASE_H);
    vec3 top = texelFetch(u_baseline, t.xy, 0).rgb * (1.0 - f.x) + texelFetch(u_baseline, t.zy, 0).rgb * f.x;
    vec3 bottom = texelFetch(u_baseline, t.xw, 0).rgb * (1.0 - f.x) + texelFetch(u_baseline, t.zw, 0).rgb * f.x;
    return top * (1.0 - f.y) + bottom * f.y;
}
#endif

#if ENCODER
vec4 F4(int i) { return texelFetch(u_features, ivec2(i % FEATURES_WIDTH, i / FEATURES_WIDTH), 0); }

void encoder_features(vec2 uv) {
    vec2 f;
    ivec4 t = bilinear_taps(uv, ivec2(ENC_W, ENC_H), f);
    for (int c = 0; c < ENC_C4; ++c) {
        vec4 top = F4((t.y * ENC_W + t.x) * ENC_C4 + c) * (1.0 - f.x) + F4((t.y * ENC_W + t.z) * ENC_C4 + c) * f.x;
        vec4 bottom = F4((t.w * ENC_W + t.x) * ENC_C4 + c) * (1.0 - f.x) + F4((t.w * ENC_W + t.z) * ENC_C4 + c) * f.x;
        vec4 v = top * (1.0 - f.y) + bottom * f.y;
        for (int e = 0; e < 4; ++e) {
            int j = c * 4 + e;
            if (j < ENC_C) GET(g_static, j) = v[e];
        }
    }
}
#endif

#if XY_KIND == 1
void xy_fourier(vec2 uv, int o) {
    vec2 p = uv * 2.0 - 1.0;
#if XY_INCLUDE_INPUT
    GET(g_static, o) = p.x;
    GET(g_static, o + 1) = p.y;
    o += 2;
#endif
    for (int d = 0; d < 2; ++d) {
        for (int k = 0; k < XY_OCTAVES; ++k) {
            float a = p[d] * XY_FREQS[k];
            GET(g_static, o + d * XY_OCTAVES + k) = sin(a);
            GET(g_static, o + 2 * XY_OCTAVES + d * XY_OCTAVES + k) = cos(a);
        }
    }
}
#endif

void time_code(float t, out vec4 code[C4]) {
    for (int k = 0; k < C4; ++k) code[k] = vec4(0.0);
    float w = mod(t, 24.0);
#if TIME_SPLINE
    float u = w / 24.0 * float(SPLINE_KNOTS);
    float i = floor(u);
    float s = u - i;
    float weights[4] = float[4]((1.0 - s) * (1.0 - s) * (1.0 - s) / 6.0,
                                (3.0 * s * s * s - 6.0 * s * s + 4.0) / 6.0,
                                (-3.0 * s * s * s + 3.0 * s * s + 3.0 * s + 1.0) / 6.0,
                                s * s * s / 6.0);
    for (int k = 0; k < 4; ++k) {
        int knot = ((int(i) + k - 1) % SPLINE_KNOTS + SPLINE_KNOTS) % SPLINE_KNOTS;
        for (int d = 0; d < C4; ++d) code[d] += P4(SPLINE_CODES + knot * C4 + d) * weights[k];
    }
#else
    for (int k = 0; k < TIME_HARMONICS; ++k) {
        float a = w * TIME_FREQS[k];
        GET(code, k) = sin(a);
        GET(code, k + TIME_HARMONICS) = cos(a);
    }
#endif
}

#if TIME_NET
float film_out(int r, vec4 fh[FH4]) {
    float a = P1(B_F2 * 4 + r);
    for (int k = 0; k < FH4; ++k) a += dot(P4(W_F2 + r * FH4 + k), fh[k]);
    return a;
}
#endif

#if BASIS
vec4 g_basis[R4];  // the basis decoder's K values of this pixel (time-free)

// The basis decoder's time-free MLP from g_first: its hidden layers, then the basis layer.
void basis_values() {
    vec4 h[H4];
    for (int k = 0; k < H4; ++k) h[k] = vec4(0.0);
    for (int j = 0; j < HIDDEN; ++j) GET(h, j) = act(GET(g_first, j));
    for (int i = 1; i < LAYERS; ++i) {
        vec4 nh[H4];
        for (int k = 0; k < H4; ++k) nh[k] = vec4(0.0);
        for (int j = 0; j < HIDDEN; ++j) {
            float v = P1(B_HID[i] * 4 + j);
            for (int k = 0; k < H4; ++k) v += dot(P4(W_HID[i] + j * H4 + k), h[k]);
            GET(nh, j) = act(v);
        }
        h = nh;
    }
    for (int k = 0; k < R4; ++k) g_basis[k] = vec4(0.0);
    for (int j = 0; j < RANK; ++j) {
        float v = P1(B_BASIS * 4 + j);
        for (int k = 0; k < H4; ++k) v += dot(P4(W_BASIS + j * H4 + k), h[k]);
        GET(g_basis, j) = v;
    }
}

// The basis decoder's outputs base..base+2 at hour t: (W + dW(t)) b + c + dc(t), dW and dc from the
// coefficient MLP.
vec3 raw_at(float t, vec2 uv, int base) {
    vec4 code[C4];
    time_code(t, code);
    vec4 fh[FH4];
    for (int k = 0; k < FH4; ++k) fh[k] = vec4(0.0);
    for (int i = 0; i < FILM_HIDDEN; ++i) {
        float a = P1(B_F0 * 4 + i);
        for (int k = 0; k < C4; ++k) a += dot(P4(W_F0 + i * C4 + k), code[k]);
        GET(fh, i) = a / (1.0 + exp(-a));
    }
    vec3 rgb;
    for (int c = 0; c < 3; ++c) {
        int r = base + c;
        float v = P1(B_OUT * 4 + r) + film_out(OUTPUTS * RANK + r, fh);
        for (int j = 0; j < RANK; ++j) v += (P1((W_OUT + r * R4) * 4 + j) + film_out(r * RANK + j, fh)) * GET(g_basis, j);
        rgb[c] = v;
    }
    return rgb;
}
#else
// The MLP outputs base..base+2 at hour t for the pixel whose static pre-activation is g_first.
vec3 raw_at(float t, vec2 uv, int base) {
    vec4 code[C4];
    time_code(t, code);
    vec4 pre[H4];
    for (int k = 0; k < H4; ++k) pre[k] = g_first[k];
#if TIME_IN_MLP
    for (int j = 0; j < HIDDEN; ++j) {
        float a = 0.0;
        for (int k = 0; k < C4; ++k) a += dot(P4(W_L0T + j * C4 + k), code[k]);
        GET(pre, j) += a;
    }
#endif
#if XYT_GRID
    vec4 g3[XYT_F4];
    grid_xyt(vec3(uv, mod(t, 24.0) / 24.0), g3);
    for (int j = 0; j < HIDDEN; ++j) {
        float a = 0.0;
        for (int k = 0; k < XYT_F4; ++k) a += dot(P4(W_L0G + j * XYT_F4 + k), g3[k]);
        GET(pre, j) += a;
    }
#endif
#if FILM
    vec4 fh[FH4];
    for (int k = 0; k < FH4; ++k) fh[k] = vec4(0.0);
    for (int i = 0; i < FILM_HIDDEN; ++i) {
        float a = P1(B_F0 * 4 + i);
        for (int k = 0; k < C4; ++k) a += dot(P4(W_F0 + i * C4 + k), code[k]);
        GET(fh, i) = a / (1.0 + exp(-a));
    }
#endif
    vec4 h[H4];
    for (int k = 0; k < H4; ++k) h[k] = vec4(0.0);
    for (int j = 0; j < HIDDEN; ++j) {
        float v = GET(pre, j);
#if FILM
        v = v * (1.0 + film_out(j, fh)) + film_out(HIDDEN + j, fh);
#endif
        GET(h, j) = act(v);
    }
    for (int i = 1; i < LAYERS; ++i) {
        vec4 nh[H4];
        for (int k = 0; k < H4; ++k) nh[k] = vec4(0.0);
        for (int j = 0; j < HIDDEN; ++j) {
            float v = P1(B_HID[i] * 4 + j);
            for (int k = 0; k < H4; ++k) v += dot(P4(W_HID[i] + j * H4 + k), h[k]);
#if FILM
            v = v * (1.0 + film_out(2 * i * HIDDEN + j, fh)) + film_out((2 * i + 1) * HIDDEN + j, fh);
#endif
            GET(nh, j) = act(v);
        }
        h = nh;
    }
    vec3 rgb;
    for (int c = 0; c < 3; ++c) {
        float v = P1(B_OUT * 4 + base + c);
        for (int k = 0; k < H4; ++k) v += dot(P4(W_OUT + (base + c) * H4 + k), h[k]);
        rgb[c] = v;
    }
    return rgb;
}
#endif

#if LIGHT_SWITCH
vec3 lamp_image(vec2 uv) {
    vec4 lin[LAMP_IN4];
    for (int k = 0; k < LAMP_IN4; ++k) lin[k] = vec4(0.0);
    for (int j = 0; j < STATIC_DIM; ++j) GET(lin, j) = GET(g_static, j);
#if LAMP_GRID
    vec4 lg4[LAMP_F4];
    grid_lamp(vec3(uv, 0.0), lg4);
    for (int j = 0; j < LAMP_GRID_DIM; ++j) GET(lin, STATIC_DIM + j) = GET(lg4, j);
#endif
    vec4 hid[LH4];
    for (int k = 0; k < LH4; ++k) hid[k] = vec4(0.0);
    for (int j = 0; j < LAMP_HIDDEN; ++j) {
        float a = P1(B_LAMP0 * 4 + j);
        for (int k = 0; k < LAMP_IN4; ++k) a += dot(P4(W_LAMP0 + j * LAMP_IN4 + k), lin[k]);
        GET(hid, j) = max(a, 0.0);
    }
    vec3 lamp;
    for (int c = 0; c < 3; ++c) {
        float a = P1(B_LAMP2 * 4 + c);
        for (int k = 0; k < LH4; ++k) a += dot(P4(W_LAMP2 + c * LH4 + k), hid[k]);
        lamp[c] = a > 20.0 ? a : log(1.0 + exp(a));
    }
    return lamp;
}
#endif

#if SUN
// the sun term (airender/nn/sun_term.py): direct sunlight in linear light at hour t
float softplus1(float a) { return a > 20.0 ? a : log(1.0 + exp(a)); }
float sigmoid1(float a) { return 1.0 / (1.0 + exp(-a)); }

vec3 sun_path_row(int r) { return vec3(SUN_PATH[3 * r], SUN_PATH[3 * r + 1], SUN_PATH[3 * r + 2]); }

vec3 sun_direction(float t) {
    float angle = mod(t, 24.0) * (6.283185307179586 / 24.0);
    vec3 raw = sun_path_row(0);
    for (int k = 1; k <= SUN_HARMONICS; ++k) {
        raw += cos(float(k) * angle) * sun_path_row(k) + sin(float(k) * angle) * sun_path_row(SUN_HARMONICS + k);
    }
    return raw / max(length(raw), 1e-6);
}

vec3 sun_light(float t) {
    vec4 hid[SH4];
    for (int k = 0; k < SH4; ++k) hid[k] = vec4(0.0);
    for (int j = 0; j < SUN_HIDDEN; ++j) {  // the per-texel response: albedo (3) and n (3)
        float a = P1(B_SR0 * 4 + j);
        for (int k = 0; k < S4; ++k) a += dot(P4(W_SR0 + j * S4 + k), g_static[k]);
        GET(hid, j) = max(a, 0.0);
    }
    float response[6];
    for (int c = 0; c < 6; ++c) {
        float a = P1(B_SR2 * 4 + c);
        for (int k = 0; k < SH4; ++k) a += dot(P4(W_SR2 + c * SH4 + k), hid[k]);
        response[c] = a;
    }
    vec3 albedo = vec3(softplus1(response[0]), softplus1(response[1]), softplus1(response[2]));
    vec3 normal = vec3(response[3], response[4], response[5]);
    vec3 d = sun_direction(t);
    float azimuth = atan(d.y, d.x);
    vec4 dir4[2] = vec4[2](vec4(d, cos(azimuth)), vec4(sin(azimuth), cos(2.0 * azimuth), sin(2.0 * azimuth), 0.0));
    vec4 h1[SH4];
    vec4 h2[SH4];
    for (int k = 0; k < SH4; ++k) { h1[k] = vec4(0.0); h2[k] = vec4(0.0); }
    for (int j = 0; j < SUN_HIDDEN; ++j) {  // the visibility of the sun
        float a = P1(B_SV0 * 4 + j);
        for (int k = 0; k < S4; ++k) a += dot(P4(W_SV0S + j * S4 + k), g_static[k]);
        for (int k = 0; k < 2; ++k) a += dot(P4(W_SV0D + j * 2 + k), dir4[k]);
        GET(h1, j) = max(a, 0.0);
    }
    for (int j = 0; j < SUN_HIDDEN; ++j) {
        float a = P1(B_SV2 * 4 + j);
        for (int k = 0; k < SH4; ++k) a += dot(P4(W_SV2 + j * SH4 + k), h1[k]);
        GET(h2, j) = max(a, 0.0);
    }
    float v = P1(B_SV4 * 4);
    for (int k = 0; k < SH4; ++k) v += dot(P4(W_SV4 + k), h2[k]);
    float elevation = asin(clamp(d.z, -1.0, 1.0));
    vec4 curve[SC4];
    for (int k = 0; k < SC4; ++k) curve[k] = vec4(0.0);
    for (int j = 0; j < SUN_CURVE; ++j) GET(curve, j) = max(P1(B_SI0 * 4 + j) + P4(W_SI0 + j).x * elevation, 0.0);
    vec3 strength;
    for (int c = 0; c < 3; ++c) {
        float a = P1(B_SI2 * 4 + c);
        for (int k = 0; k < SC4; ++k) a += dot(P4(W_SI2 + c * SC4 + k), curve[k]);
        strength[c] = softplus1(a);
    }
    strength *= sigmoid1(elevation / SUN_DAY_FADE);
    return strength * albedo * max(dot(normal, d), 0.0) * sigmoid1(v);
}
#endif

#if HAS_KNOTS
// The trained hours before and after hour t (cyclically) and the weight of the later one (0 at a trained hour).
float knot_weight(float t, out int before, out int after) {
    float wrapped = mod(t, 24.0);
    after = 0;
    for (int k = 0; k < N_KNOTS; ++k) {
        if (KNOTS[k] <= wrapped) after = k + 1;
    }
    before = (after - 1 + N_KNOTS) % N_KNOTS;
    after = after % N_KNOTS;
    float span = mod(KNOTS[after] - KNOTS[before], 24.0);
    if (span == 0.0) span = 24.0;
    return mod(wrapped - KNOTS[before], 24.0) / span;
}
#endif

// The MLP outputs base..base+2 at hour t, blended between the neighbouring trained hours with TIME_BLEND.
vec3 blended_at(float t, vec2 uv, int base) {
#if TIME_BLEND
    int before, after;
    float w = knot_weight(t, before, after);
    vec3 raw = raw_at(KNOTS[before], uv, base);
    if (w > 0.0) raw += w * (raw_at(KNOTS[after], uv, base) - raw);
    return raw;
#else
    return raw_at(t, uv, base);
#endif
}

#if SOURCES
// On (1) or off (0) of light source s at hour t: its state at a trained hour; between two, on unless off at both.
float source_on(int s, float t) {
    int before, after;
    float w = knot_weight(t, before, after);
    bool lit = SOURCE_ON[s * N_KNOTS + before] == 1 || (SOURCE_ON[s * N_KNOTS + after] == 1 && w > 0.0);
    return lit ? 1.0 : 0.0;
}
#endif

// The field's display value at uv (the atlas's [0, 1]^2, rows from the top) and hour t: sRGB in [0, 1] for LDR
// data, radiance for HDR data (before the preview exposure).
vec3 field_display(vec2 uv, float t) {
    for (int k = 0; k < S4; ++k) g_static[k] = vec4(0.0);
    int o = 0;
#if ENCODER
    encoder_features(uv);
    o = ENC_C;
#endif
#if XY_KIND == 1
    xy_fourier(uv, o);
#elif XY_KIND == 2
    vec4 gx[XY_F4];
    grid_xy(vec3(uv, 0.0), gx);
    for (int j = 0; j < XY_DIM; ++j) GET(g_static, o + j) = GET(gx, j);
#endif
    for (int j = 0; j < H4 * 4; ++j) {
        float a = 0.0;
        if (j < HIDDEN) {
            a = P1(B_L0 * 4 + j);
            for (int k = 0; k < S4; ++k) a += dot(P4(W_L0S + j * S4 + k), g_static[k]);
        }
        GET(g_first, j) = a;
    }
#if BASIS
    basis_values();
#endif
#if SOURCES
    vec3 lin = vec3(0.0);
    for (int s = 0; s < SOURCES; ++s) {
        vec3 v = blended_at(t, uv, 3 * s);
#if RESIDUAL
        v += baseline_at(uv, s);
#endif
#if SUN
        if (s == SUN_SOURCE) v = from_linear(sun_light(t));
#endif
        lin += to_linear(max(v * source_on(s, t), 0.0));
    }
    vec3 value = from_linear(lin);
#else
    vec3 value = blended_at(t, uv, 0);
#if RESIDUAL
    value += baseline_at(uv, 0);
#endif
#if LIGHT_SWITCH
    float hour = mod(t, 24.0);
    float gate = (hour < LIGHT_OFF || hour > LIGHT_ON) ? 1.0 : 0.0;
#if SUN
    value = from_linear(to_linear(value) + gate * lamp_image(uv) + sun_light(t));
#else
    value = from_linear(to_linear(value) + gate * lamp_image(uv));
#endif
#elif SUN
    value = from_linear(to_linear(value) + sun_light(t));
#endif
#endif
    return to_display(value);
}

// Linear light of a display value of field_display.
vec3 display_to_linear(vec3 display) {
#if HDR
    return display;
#else
    return srgb_to_linear(clamp(display, 0.0, 1.0));
#endif
}

//@TILED
#ifndef TILED
// The display value at uv of the model's frame (a tiled model's program routes uv to its tile's field instead).
vec3 display_at(vec2 uv, float t) { return field_display(uv, t); }
#endif

#ifndef FIELD_FUNCTIONS_ONLY
void main() {
    vec2 uv = vec2(gl_FragCoord.x / u_size.x, u_linear == 1 ? gl_FragCoord.y / u_size.y
                                                              : (u_size.y - gl_FragCoord.y) / u_size.y);
    vec3 display = display_at(uv, u_hour);
    if (u_linear == 1) {  // linear light, rows from the top: a frame the network between the hours reads
        fragColor = vec4(display_to_linear(display), 1.0);
        return;
    }
#if HDR
    display = linear_to_srgb(clamp(display * u_exposure, 0.0, 1.0));
#endif
    fragColor = vec4(clamp(display, 0.0, 1.0), 1.0);
}
#endif
