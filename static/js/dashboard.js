/*
 * Dashboard live updates. htmx polls each section (hx-trigger="every Ns"); this file only
 * skips polls while the tab is hidden, and polls once at once when it becomes visible again,
 * so an idle background tab does not keep the server busy. When the session has ended (a poll
 * was answered with the login page), it reloads the page instead of showing the login form
 * inside a section.
 */
(function () {
  "use strict";

  document.addEventListener("htmx:beforeRequest", function (event) {
    var elt = event.detail && event.detail.elt;
    if (document.hidden && elt && elt.hasAttribute("data-kw-poll")) {
      event.preventDefault();
    }
  });

  document.addEventListener("htmx:beforeSwap", function (event) {
    var xhr = event.detail && event.detail.xhr;
    if (xhr && xhr.responseURL && xhr.responseURL.indexOf("/accounts/login/") !== -1) {
      event.detail.shouldSwap = false;
      window.location.reload();
    }
  });

  document.addEventListener("visibilitychange", function () {
    if (document.hidden || !window.htmx) return;
    document.querySelectorAll("[data-kw-poll]").forEach(function (elt) {
      window.htmx.trigger(elt, "kw:refresh");
    });
  });
})();
