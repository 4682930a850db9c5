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
    if (queue.length === 0) { s.textContent = current > 0 ? "All answers saved ✓" : ""; s.className = "save-status saved"; }
    else { s.textContent = (navigator.onLine ? "Saving " : "Offline — ") + queue.length + " answer" +
           (queue.length === 1 ? "" : "s") + (navigator.onLine ? "…" : " waiting to be sent"); s.className = "save-status pending"; }
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
    ["stage", "answers", "keys", "practice-tag", "feedback", "finishing", "save-status"].forEach(function (id) {
      el(id).hidden = true;
    });
    Array.prototype.forEach.call(document.querySelectorAll(".answers-extra"), function (x) { x.hidden = true; });
    el("prompt").textContent = "This page has stopped";
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
    img.alt = caption ? caption + " image" : "digit image";
    f.appendChild(img);
    if (caption) { var c = document.createElement("figcaption"); c.textContent = caption; f.appendChild(c); }
    return f;
  }

  function show(index) {
    current = index;
    accepting = false;
    delete root.dataset.shown;
    var t = data.trials[index];
    el("feedback").hidden = true;
    el("progress").textContent = "Trial " + (index + 1) + " of " + data.n_trials;
    el("practice-tag").hidden = !t.practice;
    el("prompt").textContent = t.prompt;
    el("keys").textContent = data.keys;
    buildAnswers(t);
    var stage = el("stage");
    stage.textContent = "";
    var waits = [preload(t.image).ready];
    if (t.image_b) waits.push(preload(t.image_b).ready);
    // Start the clock only once the image is decoded and has been painted.
    Promise.all(waits).then(function () {
      if (current !== index) return;
      stage.appendChild(figure(t.image, t.image_b ? "Left" : null));
      if (t.image_b) stage.appendChild(figure(t.image_b, "Right"));
      requestAnimationFrame(function () { requestAnimationFrame(function () {
        if (current !== index) return;
        shownPerf = performance.now(); shownWall = new Date();
        accepting = true; setEnabled(true);
        root.dataset.shown = String(index);  // lets automated checks wait for "shown", not guess
      }); });
    }).catch(function () {
      el("prompt").textContent = "An image failed to load. Please check your connection; retrying…";
      delete images[t.image]; if (t.image_b) delete images[t.image_b];
      setTimeout(function () { show(index); }, 2000);
    });
  }

  function answer(value) {
    if (!accepting) return;
    accepting = false;
    setEnabled(false);
    var t = data.trials[current];
    var now = new Date();
    queue.push({
      uuid: uuid4(), trial_index: t.index, response: value,
      rt_ms: Math.round((performance.now() - shownPerf) * 10) / 10,
      shown_at: shownWall.toISOString(), answered_at: now.toISOString(),
      screen_width: screen.width, screen_height: screen.height,
      viewport_width: window.innerWidth, viewport_height: window.innerHeight,
      device_pixel_ratio: window.devicePixelRatio || 1
    });
    saveQueue(); setStatus(); flush();
    if (t.practice && t.feedback) {
      el("feedback-text").textContent = (isCorrect(t, value) ? "Well done. " : "Not quite. ") + t.feedback;
      el("feedback").hidden = false;
      el("continue").focus();
      el("feedback").scrollIntoView({ block: "nearest" });  // below the buttons on a phone
    } else {
      next();
    }
  }

  function next() {
    el("feedback").hidden = true;
    if (current + 1 < data.n_trials) show(current + 1);
    else finish();
  }

  function finish() {
    finishing = true;
    current = data.n_trials;
    ["stage", "answers", "keys", "practice-tag"].forEach(function (id) { el(id).hidden = true; });
    Array.prototype.forEach.call(document.querySelectorAll(".answers-extra"), function (x) { x.hidden = true; });
    el("prompt").textContent = "Thank you — that was the last one.";
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
          el("finishing-text").textContent = "All answers saved. One moment…";
          window.location.assign(s.next_url);
        } else {
          el("finishing-text").textContent = "Still saving your answers… (" + s.stored + " of " + s.n_trials + ")";
          scheduleRetry();
        }
      })
      .catch(function () {
        if (stopped) return;
        el("finishing-text").textContent = "Waiting for the connection to save your answers…"; scheduleRetry();
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
        el("progress").textContent = "This study cannot be shown in this page (no renderer for '" + d.task + "').";
        return;
      }
      data = d;
      data.trials.forEach(function (t) { preload(t.image); preload(t.image_b); });
      // Resume after the server's pointer, or after answers still waiting in this browser's queue.
      var resumeAt = d.next_index;
      queue.forEach(function (q) { if (q.trial_index + 1 > resumeAt) resumeAt = q.trial_index + 1; });
      setStatus(); flush();
      if (resumeAt >= d.n_trials) finish(); else show(resumeAt);
    }).catch(function () {
      if (stopped) return;
      el("progress").textContent = "Cannot reach the server; retrying…";
      setTimeout(start, 2000);
    });
  }
  start();
})();
