// The page's strings in the study's language: a JSON block (id="i18n") that the server fills from its
// catalogue (study_app/i18n.py js_catalogue). t("trial_of", {i: 3, n: 20}) fills {i} and {n};
// tn("saving", n) picks the counted form (<key>_one for 1, <key>_other otherwise). A missing key shows
// the key itself, so a gap is visible rather than silently English.
(function () {
  "use strict";
  var node = document.getElementById("i18n"), strings = {};
  try { strings = JSON.parse(node ? node.textContent : "{}"); } catch (e) { strings = {}; }
  function t(key, vars) {
    var s = Object.prototype.hasOwnProperty.call(strings, key) ? strings[key] : key;
    return s.replace(/\{(\w+)\}/g, function (m, name) {
      return vars && Object.prototype.hasOwnProperty.call(vars, name) ? String(vars[name]) : m;
    });
  }
  function tn(key, n, vars) {
    var v = { n: n };
    for (var k in (vars || {})) v[k] = vars[k];
    return t(key + (n === 1 ? "_one" : "_other"), v);
  }
  window.advlegitI18n = { t: t, tn: tn };
})();
