// airender viewer: decodes the field of model.js (window.AIRENDER_MODEL) on the GPU with WebGL2.
//
// window.airenderViewer:
//   ready        a promise, resolved once the shader is built and the first frame is drawn
//                (rejected with the reason when WebGL2 or the shader is unavailable)
//   setHour(h)   draw hour h (fractional, periodic); a promise resolved when the frame is drawn
//   readPixels() a promise of {width, height, data}: the frame as RGBA8 rows from the top
//   hour         the hour on screen
//   comparison   with ground truth (truth.js, window.AIRENDER_TRUTH, written by `airender view --truth`):
//                {truthHour, psnr} of the frame on screen against the nearest ground-truth hour, else null
//
// The network between the hours (model.between, airender/export/web/between.py): at an hour strictly between
// two stored hours in daylight, the frame is the per-pixel blend of the field's frames at those hours, its
// weights from the network's passes (float render targets: EXT_color_buffer_float). Every other hour is the
// field's own frame.
//
// Ground truth: {hours: [h, ...], frames: [PNG as base64, ...] (8-bit display values, the same
// exposure as the model's preview), mask: PNG as base64 or null (non-zero = valid), source: text}.
// The page then shows it beside the model with an error view (|model - truth| of the 8-bit display
// values, mean over RGB, x ERROR_GAIN, as a heat map) and the PSNR over the valid pixels.
"use strict";

(function () {
  const model = window.AIRENDER_MODEL;
  const hours = window.airenderHours;
  const canvas = document.getElementById("view");
  const slider = document.getElementById("hour");
  const label = document.getElementById("hour-label");
  const play = document.getElementById("play");
  const status = document.getElementById("status");
  const HOURS_PER_SECOND = 2.0;
  const ERROR_GAIN = 4.0;
  const HEAT = [[0, 0, 0], [80, 18, 123], [222, 73, 60], [253, 160, 30], [252, 253, 191]];
  const truth = window.AIRENDER_TRUTH || null;
  const truthImages = [];  // per ground-truth hour: ImageData of the frame
  let truthMask = null;    // Uint8Array of 0/1 per pixel, or null (every pixel valid)
  let comparison = null;

  let gl = null;
  let program = null;
  let hourLocation = null;
  let linearLocation = null;
  let fieldUnits = 0;      // texture units 0 .. fieldUnits - 1 hold the field's data textures
  let between = null;      // the passes of the network between the hours, when the model has one
  const FRAME_CACHE = 8;   // linear frames of stored hours kept as textures
  let hour = 12.0;

  function bytesFromBase64(text) {
    const binary = atob(text);
    const bytes = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
    return bytes;
  }

  // A data texture of model.js: {width, height, format, data: base64 of its texels, little endian}.
  // format: RGBA32F (float32), RGBA16F (IEEE half bits), RGBA8I (int8), RGBA8 (uint8, read as q / 255),
  // R32F (float32, one channel) or RGBA32I (int32, a tiled program's tile index); RGBA32F where it is missing.
  function uploadTexture(texture) {
    const formats = {
      RGBA32F: [gl.RGBA32F, gl.RGBA, gl.FLOAT, Float32Array],
      RGBA16F: [gl.RGBA16F, gl.RGBA, gl.HALF_FLOAT, Uint16Array],
      RGBA8I: [gl.RGBA8I, gl.RGBA_INTEGER, gl.BYTE, Int8Array],
      RGBA8: [gl.RGBA8, gl.RGBA, gl.UNSIGNED_BYTE, Uint8Array],
      R32F: [gl.R32F, gl.RED, gl.FLOAT, Float32Array],
      RGBA32I: [gl.RGBA32I, gl.RGBA_INTEGER, gl.INT, Int32Array],
    };
    const format = formats[texture.format || "RGBA32F"];
    if (!format) throw new Error("unknown texture format " + texture.format);
    const [internal, layout, type, View] = format;
    gl.texImage2D(gl.TEXTURE_2D, 0, internal, texture.width, texture.height, 0, layout, type,
                  new View(bytesFromBase64(texture.data).buffer));
  }

  function link(fragment) {
    const linked = gl.createProgram();
    gl.attachShader(linked, compile(gl.VERTEX_SHADER, model.vertex));
    gl.attachShader(linked, compile(gl.FRAGMENT_SHADER, fragment));
    gl.linkProgram(linked);
    if (!gl.getProgramParameter(linked, gl.LINK_STATUS)) {
      throw new Error("shader does not link: " + gl.getProgramInfoLog(linked));
    }
    return linked;
  }

  function compile(type, source) {
    const shader = gl.createShader(type);
    gl.shaderSource(shader, source);
    gl.compileShader(shader);
    if (!gl.getShaderParameter(shader, gl.COMPILE_STATUS)) {
      throw new Error("shader does not compile: " + gl.getShaderInfoLog(shader));
    }
    return shader;
  }

  function build() {
    const meta = model.meta;
    canvas.width = meta.width;
    canvas.height = meta.height;
    gl = canvas.getContext("webgl2", { preserveDrawingBuffer: true, antialias: false, premultipliedAlpha: false });
    if (!gl) throw new Error("this browser offers no WebGL2");
    program = link(model.fragment);
    gl.useProgram(program);
    let unit = 0;
    for (const [name, texture] of Object.entries(model.textures)) {
      gl.activeTexture(gl.TEXTURE0 + unit);
      gl.bindTexture(gl.TEXTURE_2D, gl.createTexture());
      gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MIN_FILTER, gl.NEAREST);
      gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MAG_FILTER, gl.NEAREST);
      gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_WRAP_S, gl.CLAMP_TO_EDGE);
      gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_WRAP_T, gl.CLAMP_TO_EDGE);
      uploadTexture(texture);
      gl.uniform1i(gl.getUniformLocation(program, name), unit);
      unit += 1;
    }
    gl.uniform2f(gl.getUniformLocation(program, "u_size"), meta.width, meta.height);
    gl.uniform1f(gl.getUniformLocation(program, "u_exposure"), meta.exposure);
    hourLocation = gl.getUniformLocation(program, "u_hour");
    linearLocation = gl.getUniformLocation(program, "u_linear");
    fieldUnits = unit;
    gl.bindVertexArray(gl.createVertexArray());
    if (model.between) buildBetween();
    const times = meta.times || [];
    hour = times.includes(12) || times.length === 0 ? 12.0 : times[0];
    draw();
  }

  // --- the network between the hours ------------------------------------------------------------------
  function buildBetween() {
    if (!gl.getExtension("EXT_color_buffer_float")) {
      throw new Error("this browser cannot draw to float textures (EXT_color_buffer_float), which the network " +
                      "between the hours needs");
    }
    const spec = model.between;
    const programs = {};
    for (const [op, source] of Object.entries(spec.programs)) programs[op] = link(source);
    const weights = gl.createTexture();
    gl.activeTexture(gl.TEXTURE0 + fieldUnits + 4);
    gl.bindTexture(gl.TEXTURE_2D, weights);
    nearest(gl.TEXTURE_2D);
    uploadTexture(spec.weights);
    const slots = {};
    for (const [name, shape] of Object.entries(spec.slots)) {
      const texture = gl.createTexture();
      gl.bindTexture(gl.TEXTURE_2D_ARRAY, texture);
      nearest(gl.TEXTURE_2D_ARRAY);
      gl.texStorage3D(gl.TEXTURE_2D_ARRAY, 1, gl.RGBA32F, shape[2], shape[1], Math.ceil(shape[0] / 4));
      slots[name] = { texture: texture, channels: shape[0], height: shape[1], width: shape[2] };
    }
    between = { spec: spec, programs: programs, weights: weights, slots: slots, frames: new Map(),
                framebuffer: gl.createFramebuffer() };
  }

  function nearest(target) {
    gl.texParameteri(target, gl.TEXTURE_MIN_FILTER, gl.NEAREST);
    gl.texParameteri(target, gl.TEXTURE_MAG_FILTER, gl.NEAREST);
    gl.texParameteri(target, gl.TEXTURE_WRAP_S, gl.CLAMP_TO_EDGE);
    gl.texParameteri(target, gl.TEXTURE_WRAP_T, gl.CLAMP_TO_EDGE);
  }

  // The linear frame of stored hour `index` (periodic) as an RGBA32F texture, drawn once and kept.
  function hourFrame(index) {
    const n = between.spec.hours.length;
    index = ((index % n) + n) % n;
    const frames = between.frames;
    if (frames.has(index)) {
      const kept = frames.get(index);
      frames.delete(index);
      frames.set(index, kept);
      return kept;
    }
    if (frames.size >= FRAME_CACHE) {
      const [oldest, texture] = frames.entries().next().value;
      gl.deleteTexture(texture);
      frames.delete(oldest);
    }
    const texture = gl.createTexture();
    gl.activeTexture(gl.TEXTURE0 + fieldUnits + 5);
    gl.bindTexture(gl.TEXTURE_2D, texture);
    nearest(gl.TEXTURE_2D);
    gl.texStorage2D(gl.TEXTURE_2D, 1, gl.RGBA32F, canvas.width, canvas.height);
    gl.bindFramebuffer(gl.FRAMEBUFFER, between.framebuffer);
    gl.framebufferTexture2D(gl.FRAMEBUFFER, gl.COLOR_ATTACHMENT0, gl.TEXTURE_2D, texture, 0);
    gl.viewport(0, 0, canvas.width, canvas.height);
    gl.useProgram(program);
    gl.uniform1i(linearLocation, 1);
    gl.uniform1f(hourLocation, between.spec.hours[index]);
    gl.drawArrays(gl.TRIANGLES, 0, 3);
    gl.uniform1i(linearLocation, 0);
    frames.set(index, texture);
    return texture;
  }

  function bindInputs(linked, inputs) {
    inputs.forEach(function ([name, target, texture], k) {
      gl.activeTexture(gl.TEXTURE0 + fieldUnits + k);
      gl.bindTexture(target, texture);
      gl.uniform1i(gl.getUniformLocation(linked, name), fieldUnits + k);
    });
  }

  function drawBetween([before, after, s]) {
    const frames = { "frame:earlier": hourFrame(before - 1), "frame:before": hourFrame(before),
                     "frame:after": hourFrame(after), "frame:later": hourFrame(after + 1) };
    const slots = between.slots;
    const clamped = Math.min(Math.max(s, 0.02), 0.98);
    for (const step of between.spec.passes) {
      const linked = between.programs[step.op];
      gl.useProgram(linked);
      const uniform = function (name) { return gl.getUniformLocation(linked, name); };
      if (step.op === "blend") {
        gl.bindFramebuffer(gl.FRAMEBUFFER, null);
        gl.viewport(0, 0, canvas.width, canvas.height);
        bindInputs(linked, [["u_f1", gl.TEXTURE_2D, frames[step.a]], ["u_f2", gl.TEXTURE_2D, frames[step.b]],
                            ["u_c", gl.TEXTURE_2D_ARRAY, slots[step.c].texture]]);
        gl.uniform1f(uniform("u_prior"), Math.log(clamped / (1 - clamped)));
        gl.uniform1i(uniform("u_hdr"), model.meta.is_hdr ? 1 : 0);
        gl.uniform1f(uniform("u_exposure"), model.meta.exposure);
        gl.uniform2f(uniform("u_size"), canvas.width, canvas.height);
        gl.drawArrays(gl.TRIANGLES, 0, 3);
        continue;
      }
      const out = slots[step.out];
      if (step.op === "input") {
        bindInputs(linked, ["u_f0", "u_f1", "u_f2", "u_f3"].map(function (name, k) {
          return [name, gl.TEXTURE_2D, frames[[step.a, step.b, step.c, step.d][k]]];
        }));
        gl.uniform1f(uniform("u_s"), s);
      } else {
        const a = slots[step.a];
        const b = step.b ? slots[step.b] : a;
        const inputs = [["u_a", gl.TEXTURE_2D_ARRAY, a.texture]];
        if (step.op === "conv") {
          inputs.push(["u_b", gl.TEXTURE_2D_ARRAY, b.texture]);
          gl.uniform4i(uniform("u_conv"), step.stride, step.padding, step.dilation, step.glsl_offset);
          gl.uniform1i(uniform("u_groups"), Math.ceil(out.channels / 4));
          gl.uniform1i(uniform("u_bweights"), fieldUnits + 4);
        }
        bindInputs(linked, inputs);
        gl.uniform4i(uniform("u_in"), a.width, a.height, Math.ceil(a.channels / 4),
                     step.b ? Math.ceil(b.channels / 4) : 0);
      }
      gl.bindFramebuffer(gl.FRAMEBUFFER, between.framebuffer);
      gl.viewport(0, 0, out.width, out.height);
      for (let layer = 0; layer < Math.ceil(out.channels / 4); layer++) {
        gl.framebufferTextureLayer(gl.FRAMEBUFFER, gl.COLOR_ATTACHMENT0, out.texture, 0, layer);
        gl.uniform4i(uniform("u_out"), out.width, out.height, layer, step.relu ? 1 : 0);
        gl.drawArrays(gl.TRIANGLES, 0, 3);
      }
    }
  }

  function draw() {
    const blend = between ? hours.blendOf(between.spec, hour) : null;
    if (blend) {
      drawBetween(blend);
    } else {
      gl.bindFramebuffer(gl.FRAMEBUFFER, null);
      gl.useProgram(program);
      gl.viewport(0, 0, canvas.width, canvas.height);
      gl.uniform1f(hourLocation, hour);
      gl.drawArrays(gl.TRIANGLES, 0, 3);
    }
    if (truth && truthImages.length) compare();
    slider.value = String(hours.wrap(hour));
    label.textContent = hours.text(hour);
  }

  function heat(v) {
    const x = Math.min(Math.max(v, 0), 1) * (HEAT.length - 1);
    const i = Math.min(Math.floor(x), HEAT.length - 2);
    const f = x - i;
    return HEAT[i].map(function (c, k) { return c + f * (HEAT[i + 1][k] - c); });
  }

  // The model's frame on screen against the nearest ground-truth hour: truth panel, error heat map, PSNR.
  function compare() {
    const k = hours.nearest(truth.hours, hour);
    const width = canvas.width;
    const height = canvas.height;
    const reference = truthImages[k];
    document.getElementById("truth").getContext("2d").putImageData(reference, 0, 0);
    const bottomUp = new Uint8Array(width * height * 4);
    gl.readPixels(0, 0, width, height, gl.RGBA, gl.UNSIGNED_BYTE, bottomUp);
    const errorCanvas = document.getElementById("error");
    const context = errorCanvas.getContext("2d");
    const out = context.createImageData(width, height);
    let squared = 0;
    let count = 0;
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        const p = ((height - 1 - y) * width + x) * 4;
        const q = (y * width + x) * 4;
        let sum = 0;
        for (let c = 0; c < 3; c++) {
          const d = bottomUp[p + c] - reference.data[q + c];
          sum += Math.abs(d);
          if (!truthMask || truthMask[y * width + x]) squared += d * d;
        }
        if (!truthMask || truthMask[y * width + x]) count += 3;
        const color = truthMask && !truthMask[y * width + x] ? [40, 40, 40] : heat(sum / 3 / 255 * ERROR_GAIN);
        out.data[q] = color[0];
        out.data[q + 1] = color[1];
        out.data[q + 2] = color[2];
        out.data[q + 3] = 255;
      }
    }
    context.putImageData(out, 0, 0);
    const mse = count ? squared / count / (255 * 255) : 0;
    const psnr = mse > 0 ? 10 * Math.log10(1 / mse) : Infinity;
    comparison = { truthHour: truth.hours[k], psnr: psnr };
    const at = Math.abs(hours.wrap(truth.hours[k]) - hours.wrap(hour)) < 1e-6 ? "" :
      " (model at " + hours.text(hour) + ", nearest ground truth " + hours.text(truth.hours[k]) + ")";
    document.getElementById("truth-title").textContent = "ground truth " + hours.text(truth.hours[k]);
    document.getElementById("error-title").textContent = "error |model - truth| x" + ERROR_GAIN;
    document.getElementById("truth-status").textContent = "PSNR " + (isFinite(psnr) ? psnr.toFixed(2) : "inf") +
      " dB on 8-bit display values" + (truthMask ? " (valid pixels)" : "") + at + "; ground truth: " + truth.source;
  }

  function loadImage(base64) {
    return new Promise(function (resolve, reject) {
      const image = new Image();
      image.onload = function () {
        const scratch = document.createElement("canvas");
        scratch.width = image.width;
        scratch.height = image.height;
        const context = scratch.getContext("2d");
        context.drawImage(image, 0, 0);
        resolve(context.getImageData(0, 0, image.width, image.height));
      };
      image.onerror = function () { reject(new Error("a ground-truth image does not decode")); };
      image.src = "data:image/png;base64," + base64;
    });
  }

  function loadTruth() {
    if (!truth) return Promise.resolve();
    for (const id of ["truth-panel", "error-panel", "view-title", "snap-label", "truth-status"]) {
      document.getElementById(id).hidden = false;
    }
    document.getElementById("panels").classList.remove("single");
    for (const id of ["truth", "error"]) {
      document.getElementById(id).width = canvas.width;
      document.getElementById(id).height = canvas.height;
    }
    const loads = truth.frames.map(loadImage);
    if (truth.mask) loads.push(loadImage(truth.mask));
    return Promise.all(loads).then(function (images) {
      for (const image of images) {
        if (image.width !== canvas.width || image.height !== canvas.height) {
          throw new Error("ground truth is " + image.width + " x " + image.height + ", the model " + canvas.width +
                          " x " + canvas.height);
        }
      }
      if (truth.mask) {
        const mask = images.pop();
        truthMask = new Uint8Array(canvas.width * canvas.height);
        for (let i = 0; i < truthMask.length; i++) truthMask[i] = mask.data[4 * i] > 0 ? 1 : 0;
      }
      truthImages.push(...images);
      if (document.getElementById("snap").checked) hour = truth.hours[hours.nearest(truth.hours, hour)];
      draw();
    });
  }

  function setHour(h) {
    return ready.then(function () {
      hour = Number(h);
      draw();
      gl.finish();
      return hour;
    });
  }

  function readPixels() {
    return ready.then(function () {
      const width = canvas.width;
      const height = canvas.height;
      const bottomUp = new Uint8Array(width * height * 4);
      gl.readPixels(0, 0, width, height, gl.RGBA, gl.UNSIGNED_BYTE, bottomUp);
      const data = new Uint8Array(width * height * 4);
      const row = width * 4;
      for (let y = 0; y < height; y++) {
        data.set(bottomUp.subarray((height - 1 - y) * row, (height - y) * row), y * row);
      }
      return { width: width, height: height, data: data };
    });
  }

  const setPlaying = hours.player(play, HOURS_PER_SECOND, function (elapsed) {
    hour = hours.wrap(hour + elapsed);
    draw();
  });

  const ready = new Promise(function (resolve, reject) {
    try {
      build();
      status.textContent = model.meta.width + " x " + model.meta.height + (model.meta.is_hdr ? ", HDR" : "");
      resolve();
    } catch (error) {
      status.textContent = "cannot show the field: " + error.message;
      reject(error);
    }
  }).then(loadTruth).catch(function (error) {
    status.textContent = "cannot show the field: " + error.message;
    throw error;
  });
  ready.catch(function () {});

  slider.addEventListener("input", function () {
    setPlaying(false);
    const h = Number(slider.value);
    const snap = truth && document.getElementById("snap").checked;
    setHour(snap ? truth.hours[hours.nearest(truth.hours, h)] : h);
  });

  window.airenderViewer = {
    ready: ready,
    setHour: setHour,
    readPixels: readPixels,
    get hour() { return hour; },
    get comparison() { return comparison; },
    meta: model.meta,
  };
})();
