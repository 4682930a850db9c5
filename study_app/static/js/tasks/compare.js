// compare: which of two images looks more like a <label> (see js/tasks/identify.js for the renderer API).
(window.advlegitTasks = window.advlegitTasks || {}).compare = {
  answers: function (t, ui) {
    ui.add(ui.button(window.advlegitI18n.t("btn_left"), "left"));
    ui.add(ui.button(window.advlegitI18n.t("btn_right"), "right"));
  },
  key: function (key) {
    return key === "ArrowLeft" ? "left" : key === "ArrowRight" ? "right" : null;
  }
};
