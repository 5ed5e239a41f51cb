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
// Ground truth: {hours: [h, ...], frames: [PNG as base64, ...] (8-bit display values, the same
// exposure as the model's preview), mask: PNG as base64 or null (non-zero = valid), source: text}.
// The page then shows it beside the model with an error view (|model - truth| of the 8-bit display
// values, mean over RGB, x ERROR_GAIN, as a heat map) and the PSNR over the valid pixels.
"use strict";

(function () {
  const model = window.AIRENDER_MODEL;
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
  let hour = 12.0;
  let playing = false;
  let lastTime = 0;

  function bytesFromBase64(text) {
    const binary = atob(text);
    const bytes = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
    return bytes;
  }

  // A data texture of model.js: {width, height, format, data: base64 of its texels, little endian}.
  // format: RGBA32F (float32), RGBA16F (IEEE half bits), RGBA8I (int8), RGBA8 (uint8, read as q / 255)
  // or R32F (float32, one channel); RGBA32F where it is missing.
  function uploadTexture(texture) {
    const formats = {
      RGBA32F: [gl.RGBA32F, gl.RGBA, gl.FLOAT, Float32Array],
      RGBA16F: [gl.RGBA16F, gl.RGBA, gl.HALF_FLOAT, Uint16Array],
      RGBA8I: [gl.RGBA8I, gl.RGBA_INTEGER, gl.BYTE, Int8Array],
      RGBA8: [gl.RGBA8, gl.RGBA, gl.UNSIGNED_BYTE, Uint8Array],
      R32F: [gl.R32F, gl.RED, gl.FLOAT, Float32Array],
    };
    const format = formats[texture.format || "RGBA32F"];
    if (!format) throw new Error("unknown texture format " + texture.format);
    const [internal, layout, type, View] = format;
    gl.texImage2D(gl.TEXTURE_2D, 0, internal, texture.width, texture.height, 0, layout, type,
                  new View(bytesFromBase64(texture.data).buffer));
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
    program = gl.createProgram();
    gl.attachShader(program, compile(gl.VERTEX_SHADER, model.vertex));
    gl.attachShader(program, compile(gl.FRAGMENT_SHADER, model.fragment));
    gl.linkProgram(program);
    if (!gl.getProgramParameter(program, gl.LINK_STATUS)) {
      throw new Error("shader does not link: " + gl.getProgramInfoLog(program));
    }
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
    gl.bindVertexArray(gl.createVertexArray());
    const times = meta.times || [];
    hour = times.includes(12) || times.length === 0 ? 12.0 : times[0];
    draw();
  }

  function wrap(h) {
    return ((h % 24) + 24) % 24;
  }

  function draw() {
    gl.viewport(0, 0, canvas.width, canvas.height);
    gl.uniform1f(hourLocation, hour);
    gl.drawArrays(gl.TRIANGLES, 0, 3);
    if (truth && truthImages.length) compare();
    slider.value = String(wrap(hour));
    const minutes = Math.round(wrap(hour) * 60) % (24 * 60);
    label.textContent = String(Math.floor(minutes / 60)).padStart(2, "0") + ":" + String(minutes % 60).padStart(2, "0");
  }

  function hourText(h) {
    const minutes = Math.round(wrap(h) * 60) % (24 * 60);
    return String(Math.floor(minutes / 60)).padStart(2, "0") + ":" + String(minutes % 60).padStart(2, "0");
  }

  function nearestTruth(h) {
    let best = 0;
    let bestDistance = Infinity;
    truth.hours.forEach(function (t, k) {
      const d = Math.abs(wrap(h) - wrap(t));
      const distance = Math.min(d, 24 - d);
      if (distance < bestDistance) { best = k; bestDistance = distance; }
    });
    return best;
  }

  function heat(v) {
    const x = Math.min(Math.max(v, 0), 1) * (HEAT.length - 1);
    const i = Math.min(Math.floor(x), HEAT.length - 2);
    const f = x - i;
    return HEAT[i].map(function (c, k) { return c + f * (HEAT[i + 1][k] - c); });
  }

  // The model's frame on screen against the nearest ground-truth hour: truth panel, error heat map, PSNR.
  function compare() {
    const k = nearestTruth(hour);
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
    const at = Math.abs(wrap(truth.hours[k]) - wrap(hour)) < 1e-6 ? "" :
      " (model at " + hourText(hour) + ", nearest ground truth " + hourText(truth.hours[k]) + ")";
    document.getElementById("truth-title").textContent = "ground truth " + hourText(truth.hours[k]);
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
      if (document.getElementById("snap").checked) hour = truth.hours[nearestTruth(hour)];
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

  function tick(time) {
    if (!playing) return;
    if (lastTime) {
      hour = wrap(hour + (time - lastTime) / 1000 * HOURS_PER_SECOND);
      draw();
    }
    lastTime = time;
    requestAnimationFrame(tick);
  }

  function setPlaying(on) {
    playing = on;
    play.textContent = on ? "Pause" : "Play";
    lastTime = 0;
    if (on) requestAnimationFrame(tick);
  }

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
    setHour(snap ? truth.hours[nearestTruth(h)] : h);
  });
  play.addEventListener("click", function () {
    setPlaying(!playing);
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
