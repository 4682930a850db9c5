// rate: how much does this look like a <label>, 1-7 (see js/tasks/identify.js for the renderer API).
(window.advlegitTasks = window.advlegitTasks || {}).rate = {
  answers: function (t, ui) {
    for (var r = 1; r <= 7; r++) {
      var b = ui.button(String(r), String(r));
      b.setAttribute("aria-label", r === 1 ? t.scale_low_aria : r === 7 ? t.scale_high_aria : String(r));
      ui.add(b);
    }
    var scale = document.createElement("div");
    scale.className = "rate-scale";
    scale.innerHTML = "<span></span><span></span>";
    scale.children[0].textContent = window.advlegitI18n.t("scale_not_at_all");
    scale.children[1].textContent = t.scale_high;  // names the class: worded by the server, per language
    ui.below(scale);
  },
  key: function (key) { return /^[1-7]$/.test(key) ? key : null; },
  // The server's attention rule (study_app/tasks/rate.py): "high" means 5 or more, "low" 3 or less.
  correct: function (t, value) {
    return t.expected === "high" ? Number(value) >= 5 : Number(value) <= 3;
  }
};
