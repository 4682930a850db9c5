// explain: how well do the highlighted pixels (right) explain the digit (left), 1-7 (see js/tasks/identify.js
// for the renderer API). The runner shows the two images; this adds the scale.
(window.advlegitTasks = window.advlegitTasks || {}).explain = {
  answers: function (trial, ui) {
    var t = window.advlegitI18n.t;
    for (var r = 1; r <= 7; r++) {
      var b = ui.button(String(r), String(r));
      b.setAttribute("aria-label", r === 1 ? t("explain_low_aria", { r: r }) : r === 7 ? t("explain_high_aria", { r: r }) : String(r));
      ui.add(b);
    }
    var scale = document.createElement("div");
    scale.className = "rate-scale";
    scale.innerHTML = "<span></span><span></span>";
    scale.children[0].textContent = t("scale_not_at_all");
    scale.children[1].textContent = t("scale_completely");
    ui.below(scale);
  },
  key: function (key) { return /^[1-7]$/.test(key) ? key : null; },
  // The server's attention rule (study_app/tasks/explain.py): "high" means 5 or more, "low" 3 or less.
  correct: function (t, value) {
    return t.expected === "high" ? Number(value) >= 5 : Number(value) <= 3;
  }
};
