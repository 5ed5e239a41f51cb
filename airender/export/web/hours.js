// airender pages (the viewer, the level page): hours of the day, and when the network between the hours blends.
//
// window.airenderHours:
//   wrap(h)                 h in [0, 24)
//   text(h)                 "HH:MM"
//   nearest(hours, h)       the index of the hour of `hours` nearest to h (periodic)
//   blendOf(between, t)     [index of h0, index of h1, s] when hour t is blended per pixel by the network between
//                           the hours (`between`: {hours, switch_hours}), else null: the rule of
//                           airender.runtime.between.BetweenHours.blend (strictly between two stored hours, with
//                           the lights off at t, h0 and h1)
//   player(button, hoursPerSecond, advance)
//                           a play button: while playing, calls advance(hours elapsed) every animation frame;
//                           returns setPlaying(on)
"use strict";

window.airenderHours = (function () {
  function wrap(h) {
    return ((h % 24) + 24) % 24;
  }

  function text(h) {
    const minutes = Math.round(wrap(h) * 60) % (24 * 60);
    return String(Math.floor(minutes / 60)).padStart(2, "0") + ":" + String(minutes % 60).padStart(2, "0");
  }

  function nearest(hours, h) {
    let best = 0;
    let bestDistance = Infinity;
    hours.forEach(function (t, k) {
      const d = Math.abs(wrap(h) - wrap(t));
      const distance = Math.min(d, 24 - d);
      if (distance < bestDistance) { best = k; bestDistance = distance; }
    });
    return best;
  }

  function blendOf(between, t) {
    const hours = between.hours;
    const n = hours.length;
    if (n < 3) return null;
    const wrapped = wrap(t);
    let after = 0;
    while (after < n && hours[after] <= wrapped) after++;
    const before = (after - 1 + n) % n;
    after = after % n;
    const span = wrap(hours[after] - hours[before]);
    const s = wrap(wrapped - hours[before]) / (span !== 0 ? span : 24);
    if (s <= 0 || s >= 1 || before === after) return null;
    if (between.switch_hours) {
      const [off, on] = between.switch_hours;
      const lightsOn = function (h) { h = wrap(h); return h < off || h > on; };
      if ([t, hours[before], hours[after]].some(lightsOn)) return null;
    }
    return [before, after, s];
  }

  function player(button, hoursPerSecond, advance) {
    let playing = false;
    let lastTime = 0;
    function tick(time) {
      if (!playing) return;
      if (lastTime) advance((time - lastTime) / 1000 * hoursPerSecond);
      lastTime = time;
      requestAnimationFrame(tick);
    }
    function setPlaying(on) {
      playing = on;
      button.textContent = on ? "Pause" : "Play";
      lastTime = 0;
      if (on) requestAnimationFrame(tick);
    }
    button.addEventListener("click", function () { setPlaying(!playing); });
    return setPlaying;
  }

  return { wrap: wrap, text: text, nearest: nearest, blendOf: blendOf, player: player };
})();
