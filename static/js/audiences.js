// The targeting screen: recount the recipients whenever a choice changes (issue 16).
(function () {
  "use strict";
  var form = document.querySelector("[data-kw-audience-form]");
  if (!form) return;
  var target = document.getElementById("kw-audience-count");
  var url = form.getAttribute("data-kw-count-url");
  var timer = null;
  var latest = 0;
  function recount() {
    var params = new URLSearchParams(new FormData(form));
    params.delete("csrfmiddlewaretoken");
    var ticket = ++latest;
    fetch(url + "?" + params.toString(), { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
      .then(function (html) { if (ticket === latest) target.innerHTML = html; })
      .catch(function () { /* keep the last count; saving still checks everything */ });
  }
  form.addEventListener("change", function () { clearTimeout(timer); timer = setTimeout(recount, 150); });
  form.addEventListener("input", function (e) {
    if (e.target.tagName === "TEXTAREA") { clearTimeout(timer); timer = setTimeout(recount, 400); }
  });
})();
