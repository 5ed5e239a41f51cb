// airender level page: the baked level in 3D (three.js), every fragment lit by the neural field decoded in the
// fragment shader at its lightmap texel and the chosen hour (airender/export/level/__init__.py).
//
// window.airenderLevel:
//   ready          a promise, resolved once the shaders are built and the first frame is drawn
//   setHour(h)     draw hour h (fractional, periodic); a promise resolved when the frame is drawn
//   setMode(m)     "neural", "truth" (the bake's atlas at the nearest baked time) or "error"; a promise
//   setCamera(c)   {position: [x, y, z], target: [x, y, z]} (metres, +Y up); a promise
//   readPixels()   a promise of {width, height, data}: the frame as RGBA8 rows from the top (alpha 0: no mesh)
//   frameMs        the last frame's time in ms, from the hour's change to its pixels (read back: all drawn)
//   hour, mode, meta
// index.html?size=WxH sets the canvas's size in pixels.
"use strict";

(function () {
  const model = window.AIRENDER_MODEL;
  const level = window.AIRENDER_LEVEL;
  const hours = window.airenderHours;
  const canvas = document.getElementById("view");
  const slider = document.getElementById("hour");
  const label = document.getElementById("hour-label");
  const play = document.getElementById("play");
  const exposureSlider = document.getElementById("exposure");
  const frameLabel = document.getElementById("frame-time");
  const status = document.getElementById("status");
  const HOURS_PER_SECOND = 1.0;
  const ERROR_GAIN = 4.0;
  const MODES = { neural: 0, truth: 1, error: 2 };

  let renderer, scene, camera, controls, material;
  let hour = 12.0;
  let mode = "neural";
  let truthIndex = -1;
  let frameMs = 0;
  let between = null;
  const onePixel = new Uint8Array(4);

  function bytes(text) {
    const binary = atob(text);
    const out = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
    return out;
  }

  // A data texture of model.js (format RGBA32F, RGBA16F, RGBA8I, RGBA8, R32F or RGBA32I), read with texelFetch.
  function dataTexture(texture) {
    const kinds = {
      RGBA32F: [Float32Array, THREE.RGBAFormat, THREE.FloatType, "RGBA32F"],
      RGBA16F: [Uint16Array, THREE.RGBAFormat, THREE.HalfFloatType, "RGBA16F"],
      RGBA8I: [Int8Array, THREE.RGBAIntegerFormat, THREE.ByteType, "RGBA8I"],
      RGBA8: [Uint8Array, THREE.RGBAFormat, THREE.UnsignedByteType, "RGBA8"],
      R32F: [Float32Array, THREE.RedFormat, THREE.FloatType, "R32F"],
      RGBA32I: [Int32Array, THREE.RGBAIntegerFormat, THREE.IntType, "RGBA32I"],
    };
    const [View, format, type, internal] = kinds[texture.format || "RGBA32F"];
    const made = new THREE.DataTexture(new View(bytes(texture.data).buffer), texture.width, texture.height, format, type);
    made.internalFormat = internal;
    nearest(made);
    return made;
  }

  function nearest(texture) {
    texture.minFilter = texture.magFilter = THREE.NearestFilter;
    texture.generateMipmaps = false;
    texture.flipY = false;
    texture.unpackAlignment = 1;
    texture.needsUpdate = true;
    return texture;
  }

  const VERTEX = `precision highp float;
uniform mat4 modelViewMatrix;
uniform mat4 projectionMatrix;
in vec3 position;
in vec2 uv;
in vec3 albedo;
out vec2 v_uv;
out vec3 v_albedo;
void main() {
    v_uv = uv;
    v_albedo = albedo;
    gl_Position = projectionMatrix * modelViewMatrix * vec4(position, 1.0);
}`;

  // After the field's functions (model.functions: display_at(uv, t) of the atlas, display_to_linear).
  const FRAGMENT_MAIN = `
in vec2 v_uv;
in vec3 v_albedo;
uniform int u_mode;              // 0 neural, 1 baked truth, 2 error
uniform float u_view_exposure;   // linear scale before the tone curve
uniform vec2 u_atlas;            // atlas width, height in texels
uniform highp sampler2D u_truth; // the bake's lighting at the nearest baked time (linear, RGBA16F)
uniform int u_between;           // 1: the network's blend of the stored hours u_before and u_after
uniform float u_before;
uniform float u_after;
uniform float u_prior;           // logit(clamp(s, 0.02, 0.98))
uniform highp sampler2DArray u_logit;
vec3 tone(vec3 radiance) { return linear_to_srgb(1.0 - exp(-max(radiance, 0.0) * u_view_exposure)); }
vec3 heat(float v) {
    vec3 c0 = vec3(0.0), c1 = vec3(0.31, 0.07, 0.48), c2 = vec3(0.87, 0.29, 0.24), c3 = vec3(0.99, 0.63, 0.12);
    vec3 c4 = vec3(0.99, 0.99, 0.75);
    float x = clamp(v, 0.0, 1.0) * 4.0;
    if (x < 1.0) return mix(c0, c1, x);
    if (x < 2.0) return mix(c1, c2, x - 1.0);
    if (x < 3.0) return mix(c2, c3, x - 2.0);
    return mix(c3, c4, x - 3.0);
}
void main() {
    ivec2 texel = clamp(ivec2(floor(v_uv * u_atlas)), ivec2(0), ivec2(u_atlas) - 1);
    vec2 uv = (vec2(texel) + 0.5) / u_atlas;
    vec3 truth = texelFetch(u_truth, texel, 0).rgb;
    vec3 neural = truth;
    if (u_mode != 1) {
        if (u_between == 1) {
            vec3 a = display_to_linear(display_at(uv, u_before));
            vec3 b = display_to_linear(display_at(uv, u_after));
            float w = 1.0 / (1.0 + exp(-(texelFetch(u_logit, ivec3(texel, 0), 0).x + u_prior)));
            neural = a + w * (b - a);
        } else {
            neural = display_to_linear(display_at(uv, u_hour));
        }
    }
    vec3 shown = tone(v_albedo * (u_mode == 1 ? truth : neural));
    if (u_mode == 2) {
        vec3 e = abs(shown - tone(v_albedo * truth));
        shown = heat((e.r + e.g + e.b) / 3.0 * ${ERROR_GAIN.toFixed(1)});
    }
    fragColor = vec4(shown, 1.0);
}`;

  function stripVersion(source) {
    return source.replace(/^#version 300 es\s*\n/, "");
  }

  function truthTexture() {
    const { width, height } = level.atlas;
    return nearest(new THREE.DataTexture(new Uint16Array(width * height * 4), width, height, THREE.RGBAFormat,
                                         THREE.HalfFloatType));
  }

  function build() {
    const size = /^(\d+)x(\d+)$/.exec(new URLSearchParams(location.search).get("size") || "");
    if (size) {  // index.html?size=WxH: the canvas's pixels (default 960 x 600)
      canvas.width = Number(size[1]);
      canvas.height = Number(size[2]);
      canvas.style.width = canvas.width + "px";
      canvas.style.height = canvas.height + "px";
    }
    renderer = new THREE.WebGLRenderer({ canvas: canvas, antialias: false, alpha: true, premultipliedAlpha: false,
                                         preserveDrawingBuffer: true });
    renderer.setPixelRatio(1);
    renderer.setSize(canvas.width, canvas.height, false);
    renderer.setClearColor(0x000000, 0);
    renderer.debug.onShaderError = function (gl, program, vertexShader, fragmentShader) {
      shaderError = (gl.getShaderInfoLog(fragmentShader) || gl.getShaderInfoLog(vertexShader) ||
                     gl.getProgramInfoLog(program) || "unknown error").trim();
    };
    scene = new THREE.Scene();
    const cam = level.camera;
    camera = new THREE.PerspectiveCamera(cam.yfov_deg, canvas.width / canvas.height, 0.05, 1000);
    camera.position.fromArray(cam.position);
    controls = new THREE.OrbitControls(camera, canvas);
    controls.target.fromArray(cam.target);
    controls.update();
    controls.addEventListener("change", draw);

    const uniforms = {};
    for (const [name, texture] of Object.entries(model.textures)) uniforms[name] = { value: dataTexture(texture) };
    Object.assign(uniforms, {
      u_hour: { value: hour }, u_mode: { value: 0 }, u_view_exposure: { value: model.meta.level_exposure },
      u_atlas: { value: [level.atlas.width, level.atlas.height] }, u_truth: { value: truthTexture() },
      u_between: { value: 0 }, u_before: { value: 0 }, u_after: { value: 0 }, u_prior: { value: 0 },
      u_logit: { value: null },
    });
    material = new THREE.RawShaderMaterial({
      glslVersion: THREE.GLSL3, vertexShader: VERTEX, uniforms: uniforms, side: THREE.DoubleSide,
      fragmentShader: stripVersion(model.functions) + FRAGMENT_MAIN,
    });
    for (const mesh of level.meshes) {
      const positions = new Float32Array(bytes(mesh.positions).buffer);
      const geometry = new THREE.BufferGeometry();
      geometry.setAttribute("position", new THREE.BufferAttribute(positions, 3));
      geometry.setAttribute("uv", new THREE.BufferAttribute(new Float32Array(bytes(mesh.uvs).buffer), 2));
      const albedo = new Float32Array(positions.length);
      for (let i = 0; i < albedo.length; i += 3) albedo.set(mesh.albedo, i);
      geometry.setAttribute("albedo", new THREE.BufferAttribute(albedo, 3));
      scene.add(new THREE.Mesh(geometry, material));
    }
    if (model.between) between = buildBetween();
  }

  // Shaders compile on first use: a compile error is kept here and reported by checkShaders.
  let shaderError = null;

  function checkShaders() {
    if (shaderError) throw new Error("a shader of the level does not compile: " + shaderError);
    if (renderer.getContext().isContextLost()) throw new Error("the WebGL2 context is lost");
  }

  // --- the network between the hours (airender/export/web/between.py), as three.js passes at the atlas's size ----
  function buildBetween() {
    const spec = model.between;
    const { width, height } = level.atlas;
    const quad = new THREE.BufferGeometry();
    quad.setAttribute("position", new THREE.BufferAttribute(new Float32Array([-1, -1, 0, 3, -1, 0, -1, 3, 0]), 3));
    const passVertex = "in vec3 position;\nvoid main() { gl_Position = vec4(position.xy, 0.0, 1.0); }";
    const passScene = new THREE.Scene();
    const passMesh = new THREE.Mesh(quad);
    passMesh.frustumCulled = false;
    passScene.add(passMesh);
    const raw = function (fragment, uniforms) {
      return new THREE.RawShaderMaterial({ glslVersion: THREE.GLSL3, vertexShader: passVertex,
                                           fragmentShader: stripVersion(fragment), uniforms: uniforms,
                                           depthTest: false, depthWrite: false });
    };
    const frameUniforms = { u_hour: { value: 0 }, u_size: { value: [width, height] }, u_linear: { value: 1 },
                            u_exposure: { value: 1 } };
    for (const name of Object.keys(model.textures)) frameUniforms[name] = material.uniforms[name];
    const programs = {
      frame: raw(model.fragment, frameUniforms),
      input: raw(spec.programs.input, { u_f0: { value: null }, u_f1: { value: null }, u_f2: { value: null },
                                        u_f3: { value: null }, u_out: { value: [0, 0, 0, 0] }, u_s: { value: 0 } }),
      conv: raw(spec.programs.conv, { u_a: { value: null }, u_b: { value: null }, u_bweights: { value: dataTexture(spec.weights) },
                                      u_out: { value: [0, 0, 0, 0] }, u_in: { value: [0, 0, 0, 0] },
                                      u_conv: { value: [0, 0, 0, 0] }, u_groups: { value: 0 } }),
      upsample: raw(spec.programs.upsample, { u_a: { value: null }, u_out: { value: [0, 0, 0, 0] },
                                              u_in: { value: [0, 0, 0, 0] } }),
    };
    const float = { type: THREE.FloatType, format: THREE.RGBAFormat, minFilter: THREE.NearestFilter,
                    magFilter: THREE.NearestFilter, depthBuffer: false, generateMipmaps: false };
    const slots = {};
    for (const [name, shape] of Object.entries(spec.slots)) {
      const target = new THREE.WebGLArrayRenderTarget(shape[2], shape[1], Math.ceil(shape[0] / 4), float);
      slots[name] = { target: target, channels: shape[0], height: shape[1], width: shape[2] };
    }
    return { spec: spec, programs: programs, slots: slots, scene: passScene, mesh: passMesh, float: float,
             frames: new Map(), key: null, camera: new THREE.OrthographicCamera(-1, 1, 1, -1, 0, 1) };
  }

  function pass(materialOfPass, target, layer) {
    between.mesh.material = materialOfPass;
    renderer.setRenderTarget(target, layer || 0);
    renderer.render(between.scene, between.camera);
  }

  // The linear frame of stored hour `index` (periodic) at the atlas's size, drawn once and kept (8 at most).
  function hourFrame(index) {
    const n = between.spec.hours.length;
    index = ((index % n) + n) % n;
    if (between.frames.has(index)) return between.frames.get(index).texture;
    if (between.frames.size >= 8) {
      const [oldest, target] = between.frames.entries().next().value;
      target.dispose();
      between.frames.delete(oldest);
    }
    const target = new THREE.WebGLRenderTarget(level.atlas.width, level.atlas.height, between.float);
    between.programs.frame.uniforms.u_hour.value = between.spec.hours[index];
    pass(between.programs.frame, target);
    between.frames.set(index, target);
    return target.texture;
  }

  // Runs the network's passes for (before, after, s); the logit ends in the last convolution's slot.
  function runBetween([before, after, s]) {
    const key = before + ":" + after + ":" + s;
    if (between.key === key) return between.logit;
    const frames = { "frame:earlier": hourFrame(before - 1), "frame:before": hourFrame(before),
                     "frame:after": hourFrame(after), "frame:later": hourFrame(after + 1) };
    const slots = between.slots;
    for (const step of between.spec.passes) {
      if (step.op === "blend") {
        between.logit = slots[step.c].target.texture;
        continue;
      }
      const out = slots[step.out];
      const program = between.programs[step.op];
      const u = program.uniforms;
      if (step.op === "input") {
        u.u_f0.value = frames[step.a]; u.u_f1.value = frames[step.b];
        u.u_f2.value = frames[step.c]; u.u_f3.value = frames[step.d];
        u.u_s.value = s;
      } else {
        const a = slots[step.a];
        const b = step.b ? slots[step.b] : a;
        u.u_a.value = a.target.texture;
        u.u_in.value = [a.width, a.height, Math.ceil(a.channels / 4), step.b ? Math.ceil(b.channels / 4) : 0];
        if (step.op === "conv") {
          u.u_b.value = b.target.texture;
          u.u_conv.value = [step.stride, step.padding, step.dilation, step.glsl_offset];
          u.u_groups.value = Math.ceil(out.channels / 4);
        }
      }
      for (let layer = 0; layer < Math.ceil(out.channels / 4); layer++) {
        u.u_out.value = [out.width, out.height, layer, step.relu ? 1 : 0];
        pass(program, out.target, layer);
      }
    }
    renderer.setRenderTarget(null);
    between.key = key;
    return between.logit;
  }

  function draw() {
    const started = performance.now();
    const k = hours.nearest(level.truth.hours, hour);
    if (k !== truthIndex) {
      const texture = material.uniforms.u_truth.value;
      texture.image.data = new Uint16Array(bytes(level.truth.frames[k]).buffer);
      texture.needsUpdate = true;
      truthIndex = k;
    }
    const u = material.uniforms;
    u.u_hour.value = hour;
    u.u_mode.value = MODES[mode];
    u.u_view_exposure.value = model.meta.level_exposure * Math.pow(2, Number(exposureSlider.value));
    const blend = between && mode !== "truth" ? hours.blendOf(between.spec, hour) : null;
    u.u_between.value = blend ? 1 : 0;
    if (blend) {
      const clamped = Math.min(Math.max(blend[2], 0.02), 0.98);
      u.u_logit.value = runBetween(blend);
      u.u_before.value = between.spec.hours[blend[0]];
      u.u_after.value = between.spec.hours[blend[1]];
      u.u_prior.value = Math.log(clamped / (1 - clamped));
    }
    renderer.setRenderTarget(null);
    renderer.render(scene, camera);
    const gl = renderer.getContext();
    gl.readPixels(0, 0, 1, 1, gl.RGBA, gl.UNSIGNED_BYTE, onePixel);  // waits for the frame (finish() need not)
    frameMs = performance.now() - started;
    frameLabel.textContent = frameMs.toFixed(1) + " ms/frame";
    slider.value = String(hours.wrap(hour));
    label.textContent = hours.text(hour);
    status.textContent = "lightmap " + level.lightmap_id + " (" + level.atlas.width + " x " + level.atlas.height +
      "), " + mode + (mode === "neural" ? "" : ", baked truth at " + hours.text(level.truth.hours[truthIndex])) +
      (blend ? "; between the stored hours: the network's blend" : "");
  }

  const setPlaying = hours.player(play, HOURS_PER_SECOND, function (elapsed) {
    hour = hours.wrap(hour + elapsed);
    draw();
  });

  const ready = new Promise(function (resolve, reject) {
    try {
      if (!window.THREE) throw new Error("three.bundle.min.js did not load");
      build();
      draw();
      checkShaders();
      resolve();
    } catch (error) {
      status.textContent = "cannot show the level: " + error.message;
      reject(error);
    }
  });
  ready.catch(function () {});

  function after(change) {
    return ready.then(function () {
      change();
      draw();
      checkShaders();
      return hour;
    });
  }

  slider.addEventListener("input", function () {
    setPlaying(false);
    after(function () { hour = Number(slider.value); });
  });
  exposureSlider.addEventListener("input", function () { after(function () {}); });
  for (const radio of document.querySelectorAll("input[name=mode]")) {
    radio.addEventListener("change", function () { after(function () { mode = radio.value; }); });
  }

  window.airenderLevel = {
    ready: ready,
    setHour: function (h) { return after(function () { hour = Number(h); }); },
    setMode: function (m) {
      if (!(m in MODES)) return Promise.reject(new Error("mode " + m + ": neural, truth or error"));
      return after(function () {
        mode = m;
        for (const radio of document.querySelectorAll("input[name=mode]")) radio.checked = radio.value === m;
      });
    },
    setCamera: function (view) {
      return after(function () {
        camera.position.fromArray(view.position);
        controls.target.fromArray(view.target);
        controls.update();
      });
    },
    readPixels: function () {
      return ready.then(function () {
        const gl = renderer.getContext();
        const width = gl.drawingBufferWidth;
        const height = gl.drawingBufferHeight;
        const bottomUp = new Uint8Array(width * height * 4);
        gl.bindFramebuffer(gl.FRAMEBUFFER, null);
        gl.readPixels(0, 0, width, height, gl.RGBA, gl.UNSIGNED_BYTE, bottomUp);
        const data = new Uint8Array(width * height * 4);
        const row = width * 4;
        for (let y = 0; y < height; y++) data.set(bottomUp.subarray((height - 1 - y) * row, (height - y) * row), y * row);
        return { width: width, height: height, data: data };
      });
    },
    get frameMs() { return frameMs; },
    get hour() { return hour; },
    get mode() { return mode; },
    meta: model.meta,
  };
})();
