/*
 * 柏市役所 LINE 配信管理 — site behaviour. No inline scripts: everything lives here.
 *
 * - Forms or buttons with data-kw-confirm="…" ask for confirmation before submitting
 *   (destructive and emergency actions).
 * - <details data-kw-fold-wide> (a list's filters) is folded on a phone and opened on a wider
 *   screen, where there is room for it.
 */
(function () {
  "use strict";

  document.addEventListener("submit", function (event) {
    var submitter = event.submitter;
    var message =
      (submitter && submitter.getAttribute("data-kw-confirm")) ||
      event.target.getAttribute("data-kw-confirm");
    if (message && !window.confirm(message)) {
      event.preventDefault();
    }
  });

  if (window.matchMedia && window.matchMedia("(min-width: 768px)").matches) {
    document.querySelectorAll("details[data-kw-fold-wide]").forEach(function (details) {
      details.open = true;
    });
  }
})();
