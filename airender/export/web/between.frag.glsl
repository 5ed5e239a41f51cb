// The passes of the network between the hours (airender/export/web/between.py), one program per pass kind:
// PASS_INPUT, PASS_CONV, PASS_UPSAMPLE or PASS_BLEND is defined above this line. Frames are RGBA32F textures
// of linear light with rows from the top (the field's shader with u_linear = 1); a tensor [C, h, w] is an
// RGBA32F texture array whose layer g holds channels 4 g .. 4 g + 3. Every pass but the blend draws one layer
// of its output at a time (u_out.z). Uniforms:
//   u_out   ivec4: output width, height, layer, ReLU (1) or not
//   u_in    ivec4: input width, height, layers of u_a, layers of u_b (0: one input)
//   u_conv  ivec4: stride, padding, dilation, first texel of the convolution in u_bweights
out vec4 fragColor;

#if PASS_INPUT
uniform sampler2D u_f0;  // the stored hour before h0 (linear frames)
uniform sampler2D u_f1;  // h0
uniform sampler2D u_f2;  // h1
uniform sampler2D u_f3;  // the stored hour after h1
uniform ivec4 u_out;
uniform float u_s;       // the fraction of the way from h0 to h1
vec3 log_light(sampler2D frame, ivec2 p) { return log(max(texelFetch(frame, p, 0).rgb, 0.0) + 1e-3); }
void main() {
    ivec2 p = ivec2(gl_FragCoord.xy);
    vec3 earlier = log_light(u_f0, p), before = log_light(u_f1, p), after = log_light(u_f2, p);
    vec3 later = log_light(u_f3, p);
    vec3 change = after - before, came = before - earlier, goes = later - after;
    // channels: before 0-2, after 3-5, after - before 6-8, before - earlier 9-11, later - after 12-14, s 15
    if (u_out.z == 0) fragColor = vec4(before, after.x);
    else if (u_out.z == 1) fragColor = vec4(after.yz, change.xy);
    else if (u_out.z == 2) fragColor = vec4(change.z, came);
    else fragColor = vec4(goes, u_s);
}
#endif

#if PASS_CONV
uniform highp sampler2DArray u_a;
uniform highp sampler2DArray u_b;
uniform sampler2D u_bweights;
uniform ivec4 u_out;
uniform ivec4 u_in;
uniform ivec4 u_conv;
uniform int u_groups;    // output layers of this convolution (its bias texels)
vec4 BW(int i) { return texelFetch(u_bweights, ivec2(i % BWEIGHTS_WIDTH, i / BWEIGHTS_WIDTH), 0); }
void main() {
    ivec2 p = ivec2(gl_FragCoord.xy);
    int layers = u_in.z + u_in.w;
    vec4 acc = BW(u_conv.w + u_out.z);
    int base = u_conv.w + u_groups + u_out.z * layers * 36;
    for (int ky = 0; ky < 3; ++ky) {
        int y = p.y * u_conv.x - u_conv.y + ky * u_conv.z;
        if (y < 0 || y >= u_in.y) continue;
        for (int kx = 0; kx < 3; ++kx) {
            int x = p.x * u_conv.x - u_conv.y + kx * u_conv.z;
            if (x < 0 || x >= u_in.x) continue;
            for (int j = 0; j < layers; ++j) {
                vec4 v = j < u_in.z ? texelFetch(u_a, ivec3(x, y, j), 0) : texelFetch(u_b, ivec3(x, y, j - u_in.z), 0);
                int w = base + j * 36 + ky * 3 + kx;  // input channel 4 j + c at w + 9 c
                acc += BW(w) * v.x + BW(w + 9) * v.y + BW(w + 18) * v.z + BW(w + 27) * v.w;
            }
        }
    }
    fragColor = u_out.w == 1 ? max(acc, 0.0) : acc;
}
#endif

#if PASS_UPSAMPLE
uniform highp sampler2DArray u_a;
uniform ivec4 u_out;
uniform ivec4 u_in;
void main() {
    ivec2 p = ivec2(gl_FragCoord.xy);
    vec2 src = max((vec2(p) + 0.5) * (vec2(u_in.xy) / vec2(u_out.xy)) - 0.5, 0.0);
    ivec2 lo = min(ivec2(floor(src)), u_in.xy - 1);
    ivec2 hi = min(lo + 1, u_in.xy - 1);
    vec2 f = src - vec2(lo);
    int g = u_out.z;
    vec4 left = texelFetch(u_a, ivec3(lo.x, lo.y, g), 0) * (1.0 - f.y) + texelFetch(u_a, ivec3(lo.x, hi.y, g), 0) * f.y;
    vec4 right = texelFetch(u_a, ivec3(hi.x, lo.y, g), 0) * (1.0 - f.y) + texelFetch(u_a, ivec3(hi.x, hi.y, g), 0) * f.y;
    fragColor = left * (1.0 - f.x) + right * f.x;
}
#endif

#if PASS_BLEND
uniform sampler2D u_f1;          // I(h0), linear
uniform sampler2D u_f2;          // I(h1), linear
uniform highp sampler2DArray u_c;  // the logit [1, H, W]
uniform float u_prior;           // logit(clamp(s, 0.02, 0.98))
uniform int u_hdr;               // 1: HDR data (radiance through u_exposure and the sRGB curve)
uniform float u_exposure;
uniform vec2 u_size;
vec3 linear_to_srgb(vec3 x) {
    vec3 high = 1.055 * pow(max(x, vec3(0.0031308)), vec3(1.0 / 2.4)) - 0.055;
    return mix(high, 12.92 * x, vec3(lessThanEqual(x, vec3(0.0031308))));
}
void main() {
    ivec2 p = ivec2(gl_FragCoord.x, u_size.y - gl_FragCoord.y);  // the canvas's rows are from the bottom
    float w = 1.0 / (1.0 + exp(-(texelFetch(u_c, ivec3(p, 0), 0).x + u_prior)));
    vec3 before = texelFetch(u_f1, p, 0).rgb;
    vec3 value = before + w * (texelFetch(u_f2, p, 0).rgb - before);
    vec3 display = u_hdr == 1 ? linear_to_srgb(clamp(value * u_exposure, 0.0, 1.0))
                              : linear_to_srgb(clamp(value, 0.0, 1.0));
    fragColor = vec4(clamp(display, 0.0, 1.0), 1.0);
}
#endif
