// The trial runner, shared by every task type. The server owns the sequence and the pointer; this file
// shows trials, measures reaction times, and delivers every answer exactly once (queue in localStorage,
// sent in order). What differs per task (answer buttons, keys, practice feedback) is the task's
// renderer, js/tasks/<task>.js, loaded before this file; it registers itself in window.advlegitTasks.
(function () {
  "use strict";
  var root = document.getElementById("task");
  if (!root) return;
  // Keyed by the (pseudonymous) participant id, not the secret link: re-entering through the
  // recruitment link issues a new link, and answers still queued in this browser must go out with it.
  var QKEY = "advlegit-queue-" + root.dataset.queueKey;
  var el = function (id) { return document.getElementById(id); };
  var data = null, renderer = null, images = {}, current = -1, accepting = false, shownPerf = 0, shownWall = null;
  var flushing = false, retryTimer = null, finishing = false, stopped = false;
  // The presentation protocol ([presentation] of the design, sent with the trials) and what is measured.
  var P = {}, display = window.advlegitDisplay, refresh = null, sequence = null, windowTimer = null;
  var trialActive = false, focusLost = false, fsExits = 0, fsUsable = false, confirmConfidence = null;
  var t_ = window.advlegitI18n.t, tn = window.advlegitI18n.tn;  // the page's strings (js/i18n.js)

  function loadQueue() {
    try { return JSON.parse(localStorage.getItem(QKEY) || "[]"); } catch (e) { return []; }
  }
  var queue = loadQueue();
  function saveQueue() { try { localStorage.setItem(QKEY, JSON.stringify(queue)); } catch (e) { /* private mode: memory only */ } }

  function uuid4() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    var b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 15) | 64; b[8] = (b[8] & 63) | 128;
    var h = Array.prototype.map.call(b, function (x) { return (x + 256).toString(16).slice(1); }).join("");
    return h.slice(0, 8) + "-" + h.slice(8, 12) + "-" + h.slice(12, 16) + "-" + h.slice(16, 20) + "-" + h.slice(20);
  }

  function setStatus() {
    var s = el("save-status");
    if (queue.length === 0) { s.textContent = current > 0 ? t_("saved_all") : ""; s.className = "save-status saved"; }
    else { s.textContent = tn(navigator.onLine ? "saving" : "offline", queue.length); s.className = "save-status pending"; }
  }

  function scheduleRetry() {
    if (!retryTimer) retryTimer = setTimeout(function () { retryTimer = null; flush(); }, 1500);
  }

  // Send queued answers one at a time, in order; stop at the first network failure and retry later.
  function flush() {
    if (stopped) return;  // the newer page sends what is queued (the queue is per participant)
    if (flushing || queue.length === 0) { setStatus(); maybeFinish(); return; }
    flushing = true;
    var item = queue[0];
    fetch(root.dataset.responsesUrl, { method: "POST", headers: { "Content-Type": "application/json", "X-CSRF-Token": root.dataset.csrf },
                                       body: JSON.stringify(item), credentials: "same-origin" })
      .then(function (r) {
        return r.json().catch(function () { return {}; }).then(function (body) { return { status: r.status, body: body }; });
      })
      .then(function (res) {
        flushing = false;
        var code = res.body && res.body.error;
        if (res.status === 200 || res.status === 201 || code === "already_answered") {
          queue.shift(); saveQueue(); setStatus(); flush();
        } else if (res.status >= 500 || res.status === 429) {
          scheduleRetry(); setStatus();
        } else if (res.status === 403 || res.status === 404) {
          // This page's link is no longer valid (the study was re-opened from the recruitment link in
          // another tab): keep the answers queued for that page, which sends them with its own link.
          superseded();
        } else {
          // A 4xx the server will never accept: keep the page usable, say so, drop it.
          console.error("response rejected", res.status, res.body);
          queue.shift(); saveQueue(); setStatus(); flush();
        }
      })
      .catch(function () { flushing = false; setStatus(); scheduleRetry(); });
  }
  window.addEventListener("online", flush);
  window.addEventListener("offline", setStatus);

  // Another tab or window took over this participant (the recruitment link was opened again, which issues
  // a new secret link): stop here, take no more answers, and say where to go on.
  function superseded() {
    stopped = true; accepting = false; finishing = false; current = data ? data.n_trials : current;
    ["stage", "answers", "keys", "practice-tag", "feedback", "finishing", "save-status", "confidence", "gate"].forEach(function (id) {
      el(id).hidden = true;
    });
    Array.prototype.forEach.call(document.querySelectorAll(".answers-extra"), function (x) { x.hidden = true; });
    el("prompt").textContent = t_("stopped");
    el("progress").textContent = "";
    el("superseded").hidden = false;
  }

  function preload(url) {
    if (!url || images[url]) return images[url];
    var img = new Image();
    img.alt = "";
    img.decoding = "async";
    var p = new Promise(function (resolve, reject) { img.onload = resolve; img.onerror = reject; });
    img.src = url;
    images[url] = { img: img, ready: p.then(function () { return img.decode ? img.decode() : null; }) };
    return images[url];
  }

  function button(label, value, extraClass, sub) {
    var b = document.createElement("button");
    b.type = "button"; b.className = "btn " + (extraClass || ""); b.dataset.value = value;
    b.textContent = label;
    if (sub) { var s = document.createElement("small"); s.textContent = sub; b.appendChild(s); }
    b.addEventListener("click", function () { answer(value); });
    return b;
  }

  // What a renderer may do: make buttons that answer, put them in the answer box, put one element
  // (a scale's labels) below it; the runner removes that element before the next trial.
  function buildAnswers(t) {
    var box = el("answers");
    box.textContent = "";
    Array.prototype.forEach.call(document.querySelectorAll(".answers-extra"), function (x) { x.remove(); });
    renderer.answers(t, {
      button: button,
      add: function (b) { box.appendChild(b); },
      below: function (x) { x.classList.add("answers-extra"); box.after(x); }
    });
    setEnabled(false);
  }

  function isCorrect(t, value) {
    return renderer.correct ? renderer.correct(t, value) : t.expected === value;
  }

  function setEnabled(on) {
    Array.prototype.forEach.call(el("answers").querySelectorAll("button"), function (b) { b.disabled = !on; });
  }

  function figure(url, caption) {
    var f = document.createElement("figure");
    var img = images[url].img;
    if (img.parentNode) img = img.cloneNode();  // the same image on both sides (an explain check)
    img.alt = caption ? t_("image_alt", { side: caption }) : t_("digit_alt");
    f.appendChild(img);
    if (P.mask && P.mask !== "none") {  // drawn over the image once its size is known (drawMasks)
      var m = document.createElement("canvas");
      m.className = "mask"; m.setAttribute("aria-hidden", "true");
      f.appendChild(m);
    }
    if (caption) { var c = document.createElement("figcaption"); c.textContent = caption; f.appendChild(c); }
    return f;
  }

  function show(index) {
    current = index;
    accepting = false;
    delete root.dataset.shown;
    var t = data.trials[index];
    el("feedback").hidden = true;
    el("progress").textContent = t_("trial_of", { i: index + 1, n: data.n_trials });
    el("practice-tag").hidden = !t.practice;
    el("prompt").textContent = t.prompt;
    el("keys").textContent = data.keys;
    el("confidence").hidden = true;
    el("answers").hidden = false;
    buildAnswers(t);
    var stage = el("stage");
    stage.textContent = "";
    stage.dataset.phase = "wait";
    var waits = [preload(t.image).ready];
    if (t.image_b) waits.push(preload(t.image_b).ready);
    // Start the clock only once the image is decoded, the display is as the design needs it, and the
    // trial's layout (and mask) is ready: the phases then only switch visibility, frame by frame.
    Promise.all(waits).then(gate).then(function () {
      if (current !== index) return;
      stage.appendChild(figure(t.image, t.image_b ? t_("left") : null));
      if (t.image_b) stage.appendChild(figure(t.image_b, t_("right")));
      var fix = document.createElement("div");
      fix.className = "fixation"; fix.textContent = "+"; fix.setAttribute("aria-hidden", "true");
      stage.appendChild(fix);
      drawMasks(stage, t);
      present(index, stage);
    }).catch(function () {
      el("prompt").textContent = t_("image_failed");
      delete images[t.image]; if (t.image_b) delete images[t.image_b];
      setTimeout(function () { show(index); }, 2000);
    });
  }

  // Masks sized to each image as laid out, drawn before the first timed frame.
  function drawMasks(stage, t) {
    Array.prototype.forEach.call(stage.querySelectorAll("canvas.mask"), function (c, side) {
      var img = c.previousElementSibling;
      c.style.left = img.offsetLeft + "px"; c.style.top = img.offsetTop + "px";
      c.style.width = img.offsetWidth + "px"; c.style.height = img.offsetHeight + "px";
      c.width = Math.max(1, img.offsetWidth); c.height = Math.max(1, img.offsetHeight);
      window.advlegitNoise.draw(c, P.mask, root.dataset.queueKey + ":" + t.index + (side ? ":b" : ""));
    });
  }

  // Fixation, image, mask, blank: each a frame-timed phase (js/present.js). The image phase opens the
  // answers and starts the reaction-time clock at its first frame.
  function present(index, stage) {
    var phases = [];
    function phase(name, ms, then) {
      phases.push({ name: name, ms: ms, enter: function (ts) {
        if (current !== index) return;
        stage.dataset.phase = name;
        if (then) then(ts);
      } });
    }
    trialActive = true; focusLost = !!document.hidden;
    if (P.fixation_ms > 0) phase("fixation", P.fixation_ms);
    phase("stimulus", P.exposure_ms, function (ts) {
      shownPerf = ts; shownWall = new Date();
      accepting = true; setEnabled(true);
      root.dataset.shown = String(index);  // lets automated checks wait for "shown", not guess
      if (P.response_window_ms > 0) {
        windowTimer = setTimeout(function () { if (current === index) answer(TIMEOUT); }, P.response_window_ms);
      }
    });
    if (P.exposure_ms > 0) {
      if (P.mask !== "none") phase("mask", P.mask_ms);
      phase("blank", 0);
    }
    sequence = window.advlegitPresent(phases, refresh.frameMs);
  }

  var TIMEOUT = "timeout";  // = presentation.TIMEOUT_RESPONSE: the response window passed unanswered

  // "How sure are you?" after the answer (design: confidence = true); resolves 1-4.
  function askConfidence() {
    el("answers").hidden = true;
    Array.prototype.forEach.call(document.querySelectorAll(".answers-extra"), function (x) { x.hidden = true; });
    el("confidence").hidden = false;
    el("confidence").querySelector("button").focus();
    return new Promise(function (resolve) { confirmConfidence = resolve; });
  }
  Array.prototype.forEach.call(document.querySelectorAll("#confidence button"), function (b) {
    b.addEventListener("click", function () { chooseConfidence(Number(b.dataset.value)); });
  });
  function chooseConfidence(v) {
    if (!confirmConfidence) return;
    var done = confirmConfidence;
    confirmConfidence = null;
    el("confidence").hidden = true;
    done(v);
  }

  function answer(value) {
    if (!accepting) return;
    accepting = false;
    clearTimeout(windowTimer);
    setEnabled(false);
    trialActive = false;
    var t = data.trials[current], index = current;
    var rt = Math.round((performance.now() - shownPerf) * 10) / 10, now = new Date();
    var asked = P.confidence && value !== TIMEOUT ? askConfidence() : Promise.resolve(null);
    // A timed sequence always runs to its end, so the measured durations are whole phases.
    Promise.all([sequence, asked]).then(function (got) {
      if (current !== index || stopped) return;
      record(t, value, rt, now, got[0], got[1]);
    });
  }

  function record(t, value, rt, now, timing, confidence) {
    var item = {
      uuid: uuid4(), trial_index: t.index, response: value,
      rt_ms: rt,
      shown_at: shownWall.toISOString(), answered_at: now.toISOString(),
      screen_width: screen.width, screen_height: screen.height,
      viewport_width: window.innerWidth, viewport_height: window.innerHeight,
      device_pixel_ratio: window.devicePixelRatio || 1,
      refresh_hz: Math.round(refresh.hz * 100) / 100,
      focus_lost: focusLost
    };
    if (P.exposure_ms > 0) {
      item.exposure_ms_requested = P.exposure_ms;
      item.exposure_ms_measured = Math.round(timing.measured.stimulus * 100) / 100;
      item.dropped_frames = timing.dropped.stimulus;
      if (P.mask !== "none") item.mask_ms_measured = Math.round(timing.measured.mask * 100) / 100;
    }
    if (confidence !== null) item.confidence = confidence;
    if (P.fullscreen) { item.fullscreen_exits = fsUsable ? fsExits : null; fsExits = 0; }
    queue.push(item);
    saveQueue(); setStatus(); flush();
    if (t.practice && t.feedback) {
      el("feedback-text").textContent = value === TIMEOUT ? t_("time_ran_out") :
        (isCorrect(t, value) ? t_("well_done") : t_("not_quite")) + " " + t.feedback;
      el("feedback").hidden = false;
      el("continue").focus();
      el("feedback").scrollIntoView({ block: "nearest" });  // below the buttons on a phone
    } else {
      next();
    }
  }

  // Vigilance: the page losing focus or visibility while a trial is up, and full-screen exits.
  window.addEventListener("blur", function () { if (trialActive) focusLost = true; });
  document.addEventListener("visibilitychange", function () { if (document.hidden && trialActive) focusLost = true; });
  function onFullscreenChange() {
    if (!P.fullscreen || display.isFullscreen() || !fsUsable) return;
    fsExits += 1;  // counted on the next answer given
    el("fullscreen-note").hidden = false;
  }
  document.addEventListener("fullscreenchange", onFullscreenChange);
  document.addEventListener("webkitfullscreenchange", onFullscreenChange);

  // Before each trial: full screen when the design asks for it (where the browser has it), and a window at
  // least the design's minimum. Waits, with the reason on screen, until both hold.
  function gate() {
    return new Promise(function (resolve) {
      var box = el("gate"), text = el("gate-text"), go = el("gate-go");
      function check() {
        var needFs = P.fullscreen && fsUsable && !display.isFullscreen();
        var small = display.viewportProblem(P.min_viewport_width, P.min_viewport_height);
        if (!needFs && !small) {
          box.hidden = true; el("fullscreen-note").hidden = true;
          window.removeEventListener("resize", check);
          resolve();
          return;
        }
        box.hidden = false;
        go.hidden = !needFs;
        text.textContent = needFs ? t_("needs_fullscreen") : small;
      }
      go.onclick = function () {
        display.enterFullscreen().catch(function () { fsUsable = false; }).then(check);
      };
      window.addEventListener("resize", check);
      check();
    });
  }

  function next() {
    // The feedback scrolled the page down; the next trial starts at the top, its progress line in view.
    if (!el("feedback").hidden) window.scrollTo(0, 0);
    el("feedback").hidden = true;
    if (current + 1 < data.n_trials) show(current + 1);
    else finish();
  }

  function finish() {
    finishing = true;
    current = data.n_trials;
    ["stage", "answers", "keys", "practice-tag", "confidence", "gate"].forEach(function (id) { el(id).hidden = true; });
    Array.prototype.forEach.call(document.querySelectorAll(".answers-extra"), function (x) { x.hidden = true; });
    el("prompt").textContent = t_("last_one");
    el("progress").textContent = "";
    el("finishing").hidden = false;
    maybeFinish();
  }

  // Leave the page only when the server confirms it has every answer.
  function maybeFinish() {
    if (!finishing || queue.length > 0) return;
    fetch(root.dataset.stateUrl, { credentials: "same-origin" }).then(function (r) {
      if (r.status === 403 || r.status === 404) { superseded(); throw new Error("superseded"); }
      return r.json();
    })
      .then(function (s) {
        if (s.state === "data_complete" || s.state === "code_issued") {
          el("finishing-text").textContent = t_("all_saved_moment");
          window.location.assign(s.next_url);
        } else {
          el("finishing-text").textContent = t_("still_saving", { stored: s.stored, n: s.n_trials });
          scheduleRetry();
        }
      })
      .catch(function () {
        if (stopped) return;
        el("finishing-text").textContent = t_("waiting_connection"); scheduleRetry();
      });
  }

  // A held key answers once: auto-repeat is ignored and a key must be released before it answers again.
  var held = {};
  document.addEventListener("keyup", function (e) { delete held[e.key]; });
  window.addEventListener("blur", function () { held = {}; });  // its keyup goes elsewhere
  document.addEventListener("keydown", function (e) {
    if (e.altKey || e.ctrlKey || e.metaKey) return;
    if (e.repeat || held[e.key]) { if (accepting || !el("feedback").hidden) e.preventDefault(); return; }
    held[e.key] = true;
    if (!el("feedback").hidden) {
      if (e.key === "Enter" || e.key === " ") { e.preventDefault(); next(); }
      return;
    }
    if (confirmConfidence) {
      if (/^[1-4]$/.test(e.key)) { e.preventDefault(); chooseConfidence(Number(e.key)); }
      return;
    }
    if (!data || !accepting) return;
    var v = renderer.key(e.key);
    if (v !== null && v !== undefined) { e.preventDefault(); answer(v); }
  });
  el("continue").addEventListener("click", next);

  function start() {
    fetch(root.dataset.trialsUrl, { credentials: "same-origin" }).then(function (r) {
      if (r.status === 403 || r.status === 404) { superseded(); throw new Error("superseded"); }
      if (!r.ok) throw new Error("HTTP " + r.status);
      return r.json();
    }).then(function (d) {
      renderer = (window.advlegitTasks || {})[d.task];
      if (!renderer) {  // a deployment without this task's js/tasks/<task>.js: say so, record nothing
        el("progress").textContent = t_("no_renderer", { task: d.task });
        return;
      }
      data = d;
      P = d.presentation || {};
      fsUsable = !!P.fullscreen && display.fullscreenSupported();
      data.trials.forEach(function (t) { preload(t.image); preload(t.image_b); });
      // Resume after the server's pointer, or after answers still waiting in this browser's queue.
      var resumeAt = d.next_index;
      queue.forEach(function (q) { if (q.trial_index + 1 > resumeAt) resumeAt = q.trial_index + 1; });
      setStatus(); flush();
      if (resumeAt >= d.n_trials) { finish(); return; }
      // The display's refresh rate, measured once before the first trial shown on this page.
      el("progress").textContent = t_("checking_screen");
      display.measureRefresh(60).then(function (r) { refresh = r; show(resumeAt); });
    }).catch(function () {
      if (stopped) return;
      el("progress").textContent = t_("cannot_reach");
      setTimeout(start, 2000);
    });
  }
  start();
})();
