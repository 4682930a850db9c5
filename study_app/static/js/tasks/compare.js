// compare: which of two images looks more like a <label> (see js/tasks/identify.js for the renderer API).
(window.advlegitTasks = window.advlegitTasks || {}).compare = {
  answers: function (t, ui) {
    ui.add(ui.button("← Left", "left"));
    ui.add(ui.button("Right →", "right"));
  },
  key: function (key) {
    return key === "ArrowLeft" ? "left" : key === "ArrowRight" ? "right" : null;
  }
};
