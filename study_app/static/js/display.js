// What the display can do, measured in the browser: refresh rate (median frame interval), viewport size,
// full screen. Used by the trial runner (task.js) and by the instructions page, which refuses to start a
// study this display cannot run ([presentation] min_refresh_hz, min_viewport_width/height).
(function () {
  "use strict";
  function median(xs) { xs = xs.slice().sort(function (a, b) { return a - b; }); return xs[Math.floor(xs.length / 2)]; }

  // The median of n frame intervals: robust to the odd late frame; resolves {hz, frameMs}.
  function measureRefresh(n) {
    n = n || 60;
    return new Promise(function (resolve) {
      var stamps = [];
      function tick(ts) {
        stamps.push(ts);
        if (stamps.length <= n) { requestAnimationFrame(tick); return; }
        var gaps = [];
        for (var i = 1; i < stamps.length; i++) gaps.push(stamps[i] - stamps[i - 1]);
        var frameMs = median(gaps);
        resolve({ hz: 1000 / frameMs, frameMs: frameMs });
      }
      requestAnimationFrame(tick);
    });
  }

  function viewport() { return { width: window.innerWidth, height: window.innerHeight }; }

  // Why this window is too small (a sentence), or null.
  function viewportProblem(minW, minH) {
    var v = viewport();
    if (v.width >= (minW || 0) && v.height >= (minH || 0)) return null;
    return window.advlegitI18n.t("window_too_small", { w: minW, h: minH, vw: v.width, vh: v.height });
  }

  var docEl = document.documentElement;
  function fullscreenSupported() {
    return !!(document.fullscreenEnabled || document.webkitFullscreenEnabled);
  }
  function isFullscreen() { return !!(document.fullscreenElement || document.webkitFullscreenElement); }
  function enterFullscreen() {  // must run inside a click or key handler
    try {
      var r = docEl.requestFullscreen ? docEl.requestFullscreen() : docEl.webkitRequestFullscreen();
      return Promise.resolve(r);
    } catch (e) { return Promise.reject(e); }
  }

  window.advlegitDisplay = { measureRefresh: measureRefresh, viewport: viewport, viewportProblem: viewportProblem,
                             fullscreenSupported: fullscreenSupported, isFullscreen: isFullscreen,
                             enterFullscreen: enterFullscreen };

  // The instructions page: measure, fill the form's hidden fields (the server checks them again), and keep
  // Start disabled with the reason shown while this display is below the study's minimum.
  var check = document.getElementById("display-check");
  if (!check) return;
  var minHz = Number(check.dataset.minRefreshHz || 0), minW = Number(check.dataset.minWidth || 0),
      minH = Number(check.dataset.minHeight || 0);
  var form = check.closest("form"), start = form.querySelector("button[type=submit]"), note = check.querySelector("p");
  var hz = null;
  function field(name, value) { form.querySelector("input[name=" + name + "]").value = value; }
  function update() {
    var v = viewport();
    field("viewport_width", v.width); field("viewport_height", v.height);
    var problem = viewportProblem(minW, minH);
    if (!problem && hz !== null && hz < minHz) {
      problem = window.advlegitI18n.t("refresh_too_low", { min: minHz, hz: Math.round(hz) });
    }
    var measuring = minHz && hz === null;
    start.disabled = !!problem || measuring;
    note.textContent = problem || (measuring ? window.advlegitI18n.t("checking_screen") : "");
    check.hidden = !note.textContent;
  }
  window.addEventListener("resize", update);
  update();
  if (minHz) measureRefresh(60).then(function (r) { hz = r.hz; field("refresh_hz", r.hz.toFixed(2)); update(); });
})();
