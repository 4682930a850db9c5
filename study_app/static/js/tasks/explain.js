// explain: how well do the highlighted pixels (right) explain the digit (left), 1-7 (see js/tasks/identify.js
// for the renderer API). The runner shows the two images; this adds the scale.
(window.advlegitTasks = window.advlegitTasks || {}).explain = {
  answers: function (t, ui) {
    for (var r = 1; r <= 7; r++) {
      var b = ui.button(String(r), String(r));
      b.setAttribute("aria-label", r + (r === 1 ? " (does not explain it at all)" : r === 7 ? " (explains it completely)" : ""));
      ui.add(b);
    }
    var scale = document.createElement("div");
    scale.className = "rate-scale";
    scale.innerHTML = "<span></span><span></span>";
    scale.children[0].textContent = "1 = not at all";
    scale.children[1].textContent = "7 = completely";
    ui.below(scale);
  },
  key: function (key) { return /^[1-7]$/.test(key) ? key : null; },
  // The server's attention rule (study_app/tasks/explain.py): "high" means 5 or more, "low" 3 or less.
  correct: function (t, value) {
    return t.expected === "high" ? Number(value) >= 5 : Number(value) <= 3;
  }
};
