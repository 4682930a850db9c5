// Frame-timed presentation: a trial's phases (fixation, image, mask, blank) switched in
// requestAnimationFrame callbacks. A change made in the callback at time ts is painted in the frame that
// follows it, so a phase's on-screen duration is the difference of the timestamps of the callbacks that
// began and ended it. A phase ends at the first frame whose timestamp is within half a frame of its
// requested duration; gaps longer than 1.5 frames between callbacks are counted as dropped frames.
(window.advlegitPresent = function (phases, frameMs) {
  "use strict";
  var res = { measured: {}, dropped: {}, onset: {} };
  var i = -1, start = 0, prev = 0;
  return new Promise(function (resolve) {
    function enter(k, ts) {
      if (i >= 0) res.measured[phases[i].name] = ts - start;
      i = k; start = ts;
      res.onset[phases[k].name] = ts; res.dropped[phases[k].name] = 0;
      phases[k].enter(ts);
      // The last phase stays until the trial ends: nothing more to time.
      if (k === phases.length - 1) resolve(res); else requestAnimationFrame(frame);
    }
    function frame(ts) {
      var p = phases[i], gap = ts - prev;
      if (gap > 1.5 * frameMs) res.dropped[p.name] += Math.round(gap / frameMs) - 1;
      prev = ts;
      if (ts - start >= p.ms - frameMs / 2) enter(i + 1, ts); else requestAnimationFrame(frame);
    }
    requestAnimationFrame(function (ts) { prev = ts; enter(0, ts); });
  });
});
