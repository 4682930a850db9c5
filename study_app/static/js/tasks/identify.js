// identify: name the digit (or, for a set whose classes have names, the class: key 3 = "cat").
// A task renderer tells the trial runner (js/task.js) which answer buttons to show, which key means
// which answer, and (for practice feedback) whether an answer was right.
(window.advlegitTasks = window.advlegitTasks || {}).identify = {
  answers: function (t, ui) {
    var names = t.classes || [];
    var digits = names.every(function (n, i) { return n === String(i); });
    for (var d = 0; d < 10; d++) ui.add(ui.button(String(d), String(d), "", digits ? null : names[d]));
    var n = ui.button(window.advlegitI18n.t(digits ? "not_a_digit" : "none_of_these"), "none", "none");
    n.setAttribute("aria-keyshortcuts", "N");
    ui.add(n);
  },
  key: function (key) {
    if (/^[0-9]$/.test(key)) return key;
    return key === "n" || key === "N" ? "none" : null;
  }
};
