/*
 * The emergency approval screen: say, as the supervisor types, whether the typed recipient
 * count matches the one shown (full-width digits and separators are fine, as on the server).
 * The server decides; this is only a hint. Submitting twice is prevented.
 */
(function () {
  "use strict";

  var form = document.querySelector("[data-kw-expected]");
  if (!form) return;
  var expected = form.getAttribute("data-kw-expected");
  var input = form.querySelector('input[name="typed_count"]');
  var status = form.querySelector("[data-kw-typed-status]");

  function digits(value) {
    return (value || "")
      .normalize("NFKC")
      .replace(/[^0-9]/g, "");
  }

  // The server's error about the previous attempt no longer applies once the value changes.
  var serverError = form.querySelector("[data-testid=typed-count-error]");
  var posted = input ? input.value : "";

  function update() {
    if (!input || !status) return;
    if (serverError && input.value !== posted) {
      serverError.classList.remove("d-block");
      serverError.classList.add("d-none");
      input.classList.remove("is-invalid");
      input.setAttribute("aria-describedby", "kw-ea-typed-help");
    }
    var typed = digits(input.value);
    status.classList.remove("is-match", "is-mismatch");
    if (!typed) {
      status.textContent = "";
    } else if (typed === expected) {
      status.textContent = "受信者数が一致しました。";
      status.classList.add("is-match");
    } else if (typed.length >= expected.length) {
      status.textContent = "受信者数が一致しません。";
      status.classList.add("is-mismatch");
    } else {
      status.textContent = "";
    }
  }

  if (input) {
    input.addEventListener("input", update);
    update();
  }

  form.addEventListener("submit", function (event) {
    if (form.getAttribute("data-kw-submitted")) {
      event.preventDefault();
      return;
    }
    form.setAttribute("data-kw-submitted", "1");
  });

  var errors = document.getElementById("kw-ea-errors");
  if (errors) errors.focus();
})();
