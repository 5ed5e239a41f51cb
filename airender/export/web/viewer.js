// airender viewer: decodes the field of model.js (window.AIRENDER_MODEL) on the GPU with WebGL2.
//
// window.airenderViewer:
//   ready        a promise, resolved once the shader is built and the first frame is drawn
//                (rejected with the reason when WebGL2 or the shader is unavailable)
//   setHour(h)   draw hour h (fractional, periodic); a promise resolved when the frame is drawn
//   readPixels() a promise of {width, height, data}: the frame as RGBA8 rows from the top
//   hour         the hour on screen
"use strict";

(function () {
  const model = window.AIRENDER_MODEL;
  const canvas = document.getElementById("view");
  const slider = document.getElementById("hour");
  const label = document.getElementById("hour-label");
  const play = document.getElementById("play");
  const status = document.getElementById("status");
  const HOURS_PER_SECOND = 2.0;

  let gl = null;
  let program = null;
  let hourLocation = null;
  let hour = 12.0;
  let playing = false;
  let lastTime = 0;

  function floatsFromBase64(text) {
    const binary = atob(text);
    const bytes = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
    return new Float32Array(bytes.buffer);
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
      gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGBA32F, texture.width, texture.height, 0, gl.RGBA, gl.FLOAT,
                    floatsFromBase64(texture.data));
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
    slider.value = String(wrap(hour));
    const minutes = Math.round(wrap(hour) * 60) % (24 * 60);
    label.textContent = String(Math.floor(minutes / 60)).padStart(2, "0") + ":" + String(minutes % 60).padStart(2, "0");
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
  });
  ready.catch(function () {});

  slider.addEventListener("input", function () {
    setPlaying(false);
    setHour(Number(slider.value));
  });
  play.addEventListener("click", function () {
    setPlaying(!playing);
  });

  window.airenderViewer = {
    ready: ready,
    setHour: setHour,
    readPixels: readPixels,
    get hour() { return hour; },
    meta: model.meta,
  };
})();
