// explain_pair: which of two highlighted patterns shows the named digit better (see js/tasks/identify.js
// for the renderer API). The runner shows the two maps; practice answers are right or wrong by `expected`.
(window.advlegitTasks = window.advlegitTasks || {}).explain_pair = {
  answers: function (t, ui) {
    ui.add(ui.button(window.advlegitI18n.t("btn_left"), "left"));
    ui.add(ui.button(window.advlegitI18n.t("btn_right"), "right"));
  },
  key: function (key) {
    return key === "ArrowLeft" ? "left" : key === "ArrowRight" ? "right" : null;
  }
};
