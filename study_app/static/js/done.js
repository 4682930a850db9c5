// Completion page: a "Copy code" button where the browser allows writing to the clipboard.
"use strict";
(function () {
  const button = document.getElementById("copy-code");
  const status = document.getElementById("copy-status");
  if (!button || !navigator.clipboard || !window.isSecureContext) return;  // the code stays readable anyway
  button.hidden = false;
  button.addEventListener("click", function () {
    navigator.clipboard.writeText(button.dataset.code).then(
      function () { status.textContent = window.advlegitI18n.t("copied"); },
      function () { status.textContent = window.advlegitI18n.t("copy_failed"); });
  });
})();
