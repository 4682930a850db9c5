// The backward mask: 1/f ("pink") noise, made per trial in the browser from a seed, so the same
// participant and trial always get the same mask (seed = fnv1a32(participant id + ":" + trial index)).
// White Gaussian noise, filtered in the frequency domain by 1/f amplitude, drawn at the stimulus's size.
(function () {
  "use strict";
  function fnv1a(text) {
    var h = 0x811c9dc5;
    for (var i = 0; i < text.length; i++) { h ^= text.charCodeAt(i); h = Math.imul(h, 0x01000193) >>> 0; }
    return h >>> 0;
  }
  function mulberry32(a) {
    return function () {
      a = (a + 0x6D2B79F5) | 0;
      var t = Math.imul(a ^ (a >>> 15), 1 | a);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  }
  // In-place radix-2 FFT of one row or column (stride), sign -1 forward, +1 inverse (unscaled).
  function fft(re, im, off, stride, n, sign) {
    for (var i = 1, j = 0; i < n; i++) {
      var bit = n >> 1;
      for (; j & bit; bit >>= 1) j ^= bit;
      j ^= bit;
      if (i < j) {
        var a = off + i * stride, b = off + j * stride, t = re[a]; re[a] = re[b]; re[b] = t;
        t = im[a]; im[a] = im[b]; im[b] = t;
      }
    }
    for (var len = 2; len <= n; len <<= 1) {
      var ang = sign * 2 * Math.PI / len, wr = Math.cos(ang), wi = Math.sin(ang);
      for (var s = 0; s < n; s += len) {
        var cr = 1, ci = 0;
        for (var k = 0; k < len / 2; k++) {
          var p = off + (s + k) * stride, q = off + (s + k + len / 2) * stride;
          var xr = re[q] * cr - im[q] * ci, xi = re[q] * ci + im[q] * cr;
          re[q] = re[p] - xr; im[q] = im[p] - xi; re[p] += xr; im[p] += xi;
          var ncr = cr * wr - ci * wi; ci = cr * wi + ci * wr; cr = ncr;
        }
      }
    }
  }
  function fft2(re, im, n, sign) {
    for (var r = 0; r < n; r++) fft(re, im, r * n, 1, n, sign);
    for (var c = 0; c < n; c++) fft(re, im, c, n, n, sign);
  }

  // An n×n field (n a power of two) of 1/f noise, scaled to grey levels 0-255 (mean 128, sd 40).
  function pink(n, seed) {
    var rand = mulberry32(seed), re = new Float64Array(n * n), im = new Float64Array(n * n);
    for (var i = 0; i < n * n; i += 2) {  // Box-Muller: two normal draws per pair of uniforms
      var u = Math.max(rand(), 1e-12), v = rand(), m = Math.sqrt(-2 * Math.log(u));
      re[i] = m * Math.cos(2 * Math.PI * v); re[i + 1] = m * Math.sin(2 * Math.PI * v);
    }
    fft2(re, im, n, -1);
    for (var y = 0; y < n; y++) {
      var fy = y <= n / 2 ? y : y - n;
      for (var x = 0; x < n; x++) {
        var fx = x <= n / 2 ? x : x - n, f = Math.sqrt(fx * fx + fy * fy), g = f ? 1 / f : 0;
        re[y * n + x] *= g; im[y * n + x] *= g;
      }
    }
    fft2(re, im, n, 1);
    var sum = 0, sq = 0;
    for (i = 0; i < n * n; i++) { sum += re[i]; sq += re[i] * re[i]; }
    var mean = sum / (n * n), sd = Math.sqrt(sq / (n * n) - mean * mean) || 1, out = new Uint8ClampedArray(n * n);
    for (i = 0; i < n * n; i++) out[i] = 128 + 40 * (re[i] - mean) / sd;
    return out;
  }

  // Fill `canvas` (already sized to the stimulus) with this trial's noise; grey for a blank mask.
  function draw(canvas, kind, seedText) {
    var w = canvas.width, h = canvas.height, ctx = canvas.getContext("2d");
    if (kind !== "noise") { ctx.fillStyle = "rgb(128,128,128)"; ctx.fillRect(0, 0, w, h); return; }
    var n = 8;
    while (n < Math.max(w, h) && n < 256) n <<= 1;
    var field = pink(n, fnv1a(seedText)), img = ctx.createImageData(n, n);
    for (var i = 0; i < n * n; i++) {
      img.data[4 * i] = img.data[4 * i + 1] = img.data[4 * i + 2] = field[i]; img.data[4 * i + 3] = 255;
    }
    var tile = document.createElement("canvas");
    tile.width = tile.height = n;
    tile.getContext("2d").putImageData(img, 0, 0);
    ctx.imageSmoothingEnabled = true;
    ctx.drawImage(tile, 0, 0, n, n, 0, 0, w, h);
  }

  window.advlegitNoise = { draw: draw, pink: pink, seed: fnv1a };
})();
