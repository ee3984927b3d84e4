/*
 * 柏市役所 LINE 配信管理 — the compose screen.
 *
 * - Message builder: add (from the <template>), move up/down, remove; keeps the formset's
 *   field names numbered 0..n-1 and TOTAL_FORMS in step. At most 5 messages.
 * - A live LINE-style preview built with textContent only (never innerHTML), so text such as
 *   "<script>" is shown as typed, not run.
 * - Character counters in UTF-16 units (JavaScript strings are UTF-16, so emoji count 2).
 * - The effective send time and the recipient counts, from broadcasts:preview_time; on a new
 *   draft, the recipients and message cost panel, from broadcasts:audience_count_new.
 *
 * The server re-validates everything; this file only helps.
 */
(function () {
  "use strict";

  var form = document.getElementById("kw-compose-form");
  if (!form) return;

  var PREFIX = "m";
  var MAX = 5;
  var TEXT_LIMIT = 5000;
  var list = document.getElementById("kw-messages");
  var template = document.getElementById("kw-message-template");
  var totalInput = form.querySelector('input[name="' + PREFIX + '-TOTAL_FORMS"]');
  var countLabel = form.querySelector("[data-kw-msg-count]");
  var previewBody = document.querySelector("#kw-preview [data-kw-preview-body]");
  var effectiveBox = document.getElementById("kw-effective");
  var previewTimeUrl = form.getAttribute("data-preview-time-url");

  function messages() {
    return Array.prototype.slice.call(list.querySelectorAll("[data-kw-message]"));
  }

  function field(fieldset, name) {
    return fieldset.querySelector('[name$="-' + name + '"]');
  }

  function value(fieldset, name) {
    var el = field(fieldset, name);
    return el ? el.value : "";
  }

  // --- numbering -------------------------------------------------------------------------
  var INDEX_RE = new RegExp(PREFIX + "-(\\d+|__prefix__)-", "g");
  var ATTRS = ["name", "id", "for", "aria-describedby", "aria-labelledby"];

  function renumber() {
    messages().forEach(function (fieldset, index) {
      var nodes = fieldset.querySelectorAll("*");
      for (var i = 0; i < nodes.length; i++) {
        for (var j = 0; j < ATTRS.length; j++) {
          var v = nodes[i].getAttribute(ATTRS[j]);
          if (v && v.indexOf(PREFIX + "-") !== -1) {
            nodes[i].setAttribute(ATTRS[j], v.replace(INDEX_RE, PREFIX + "-" + index + "-"));
          }
        }
      }
      var title = fieldset.querySelector("[data-kw-msg-title]");
      if (title) title.textContent = "メッセージ " + (index + 1);
      var n = index + 1;
      fieldset.querySelectorAll("[data-kw-which]").forEach(function (span) {
        span.textContent = "（メッセージ " + n + "）";
      });
      setDisabled(fieldset, "[data-kw-move=up]", index === 0);
      setDisabled(fieldset, "[data-kw-move=down]", index === messages().length - 1);
    });
    var count = messages().length;
    totalInput.value = String(count);
    var full = count >= MAX;
    form.querySelectorAll("[data-kw-add]").forEach(function (button) {
      button.disabled = full;
    });
    if (countLabel) {
      countLabel.textContent = count + " / " + MAX + " 件" + (full ? "（これ以上追加できません）" : "");
    }
  }

  function setDisabled(fieldset, selector, disabled) {
    var button = fieldset.querySelector(selector);
    if (button) button.disabled = disabled;
  }

  // --- add / move / remove ---------------------------------------------------------------
  function addMessage(kind) {
    if (messages().length >= MAX) return;
    var index = messages().length;
    var html = template.innerHTML
      .replace(/__prefix__/g, String(index))
      .replace(/__num__/g, String(index + 1));
    var holder = document.createElement("div");
    holder.innerHTML = html; // our own server-rendered template, not user input
    var fieldset = holder.querySelector("[data-kw-message]");
    list.appendChild(fieldset);
    var select = field(fieldset, "kind");
    select.value = kind;
    fieldset.setAttribute("data-kind", kind);
    renumber();
    refresh();
    var first = fieldset.querySelector(".kw-kind-" + kind + " input, .kw-kind-" + kind + " textarea");
    (first || select).focus();
  }

  function move(fieldset, direction) {
    var sibling = direction === "up" ? fieldset.previousElementSibling : fieldset.nextElementSibling;
    if (!sibling) return;
    if (direction === "up") list.insertBefore(fieldset, sibling);
    else list.insertBefore(sibling, fieldset);
    renumber();
    refresh();
    var button = fieldset.querySelector("[data-kw-move=" + direction + "]");
    if (button && !button.disabled) button.focus();
    else fieldset.querySelector("[data-kw-move]:not([disabled])").focus();
  }

  function remove(fieldset) {
    var next = fieldset.nextElementSibling || fieldset.previousElementSibling;
    fieldset.parentNode.removeChild(fieldset);
    renumber();
    refresh();
    var target = next ? field(next, "kind") : form.querySelector("[data-kw-add]");
    if (target) target.focus();
  }

  form.addEventListener("click", function (event) {
    var button = event.target.closest("button");
    if (!button || !form.contains(button)) return;
    var fieldset = button.closest("[data-kw-message]");
    if (button.hasAttribute("data-kw-add")) {
      addMessage(button.getAttribute("data-kw-add"));
    } else if (fieldset && button.hasAttribute("data-kw-move")) {
      move(fieldset, button.getAttribute("data-kw-move"));
    } else if (fieldset && button.hasAttribute("data-kw-remove")) {
      remove(fieldset);
    }
  });

  // --- preview ---------------------------------------------------------------------------
  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function isHttps(url) {
    return /^https:\/\//i.test(url);
  }

  function previewOf(fieldset) {
    var kind = value(fieldset, "kind") || "text";
    if (kind === "image") {
      var wrap = el("div", "kw-bubble-image");
      var url = value(fieldset, "preview_url").trim() || value(fieldset, "image_url").trim();
      if (isHttps(url)) {
        var img = el("img");
        img.src = url;
        img.alt = "配信する画像";
        img.loading = "lazy";
        img.referrerPolicy = "no-referrer";
        wrap.appendChild(img);
      } else {
        wrap.appendChild(el("span", "kw-image-missing", "画像（https の URL を入力してください）"));
      }
      return wrap;
    }
    if (kind === "sticker") {
      var sticker = el("div", "kw-sticker");
      sticker.setAttribute("role", "img");
      sticker.setAttribute("aria-label", "スタンプ");
      var face = el("span", "", "☺");
      face.setAttribute("aria-hidden", "true");
      sticker.appendChild(face);
      sticker.appendChild(el("span", "kw-sticker-ids",
        "スタンプ " + value(fieldset, "package_id") + " / " + value(fieldset, "sticker_id")));
      return sticker;
    }
    if (kind === "card") {
      var card = el("div", "kw-card");
      var thumb = value(fieldset, "card_thumbnail").trim();
      if (isHttps(thumb)) {
        var t = el("img", "kw-card-thumb");
        t.src = thumb;
        t.alt = "";
        t.referrerPolicy = "no-referrer";
        card.appendChild(t);
      }
      var body = el("div", "kw-card-body");
      var title = value(fieldset, "card_title").trim();
      if (title) body.appendChild(el("div", "kw-card-title", title));
      body.appendChild(el("div", "kw-card-text", value(fieldset, "card_text").trim()));
      card.appendChild(body);
      var actions = el("ul", "kw-card-actions list-unstyled mb-0");
      for (var slot = 1; slot <= 4; slot++) {
        var label = value(fieldset, "action" + slot + "_label").trim();
        var uri = value(fieldset, "action" + slot + "_uri").trim();
        if (!label && !uri) continue;
        var li = el("li");
        var b = el("span", "kw-card-button", label || "（表示名なし）");
        b.title = uri;
        li.appendChild(b);
        actions.appendChild(li);
      }
      card.appendChild(actions);
      return card;
    }
    return el("div", "kw-bubble kw-bubble-text", value(fieldset, "text"));
  }

  function renderPreview() {
    if (!previewBody) return;
    previewBody.replaceChildren();
    var all = messages();
    if (!all.length) {
      previewBody.appendChild(el("li", "kw-chat-empty", "メッセージがありません。"));
      return;
    }
    all.forEach(function (fieldset) {
      var row = el("li", "kw-chat-row");
      var avatar = el("span", "kw-chat-avatar", "柏");
      avatar.setAttribute("aria-hidden", "true");
      row.appendChild(avatar);
      row.appendChild(previewOf(fieldset));
      previewBody.appendChild(row);
    });
  }

  // --- counters --------------------------------------------------------------------------
  function updateCounters() {
    messages().forEach(function (fieldset) {
      var counter = fieldset.querySelector("[data-kw-counter]");
      if (!counter) return;
      var length = value(fieldset, "text").length; // UTF-16 code units, like LINE
      counter.querySelector("[data-kw-count]").textContent = length.toLocaleString("ja-JP");
      counter.classList.toggle("kw-counter-over", length > TEXT_LIMIT);
    });
  }

  function syncKinds() {
    messages().forEach(function (fieldset) {
      fieldset.setAttribute("data-kind", value(fieldset, "kind") || "text");
    });
  }

  function refresh() {
    syncKinds();
    updateCounters();
    renderPreview();
  }

  // --- effective send time ---------------------------------------------------------------
  var timer = null;
  var lastRequest = 0;

  function checkedValue(name) {
    var input = form.querySelector('input[name="' + name + '"]:checked');
    return input ? input.value : "";
  }

  function updateEffective() {
    if (!previewTimeUrl || !effectiveBox) return;
    var params = new URLSearchParams();
    params.set("timing", checkedValue("timing") || "asap");
    params.set("requested_at", (form.querySelector('[name="requested_at"]') || {}).value || "");
    params.set("priority", checkedValue("priority") || "normal");
    params.set("audience", checkedValue("audience") || "all");
    form.querySelectorAll('input[name="categories"]:checked').forEach(function (input) {
      params.append("categories", input.value);
    });
    var requestId = ++lastRequest;
    fetch(previewTimeUrl + "?" + params.toString(), {
      credentials: "same-origin",
      headers: { Accept: "application/json" },
    })
      .then(function (response) { return response.json(); })
      .then(function (data) {
        if (requestId !== lastRequest) return;
        effectiveBox.textContent = data.text || data.error || "";
        effectiveBox.classList.remove("alert-info", "alert-warning", "alert-danger");
        effectiveBox.classList.add(
          data.past || data.error ? "alert-danger" : data.held ? "alert-warning" : "alert-info"
        );
        var counts = data.recipients || {};
        Object.keys(counts).forEach(function (key) {
          var node = form.querySelector('[data-kw-recipients="' + key + '"]');
          if (node) node.textContent = String(counts[key]);
        });
      })
      .catch(function () {
        if (requestId !== lastRequest) return;
        effectiveBox.textContent = "送信予定日時を計算できませんでした（保存時に確認されます）。";
      });
  }

  // --- a new draft's recipients and message cost (issue 16) --------------------------------
  var audienceCount = document.getElementById("kw-audience-count");
  var audienceCountUrl = audienceCount && audienceCount.getAttribute("data-kw-count-url");
  var lastCount = 0;

  function updateAudienceCount() {
    if (!audienceCountUrl) return;
    var params = new URLSearchParams();
    params.set("audience", checkedValue("audience") || "all");
    form.querySelectorAll('input[name="categories"]:checked').forEach(function (input) {
      params.append("categories", input.value);
    });
    var ticket = ++lastCount;
    fetch(audienceCountUrl + "?" + params.toString(), { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
      .then(function (html) { if (ticket === lastCount) audienceCount.innerHTML = html; })
      .catch(function () { /* keep the last count; saving and the checks recount */ });
  }

  function scheduleEffective() {
    window.clearTimeout(timer);
    timer = window.setTimeout(function () {
      updateEffective();
      updateAudienceCount();
    }, 250);
  }

  var TIMING_FIELDS = ["timing", "requested_at", "priority", "audience", "categories"];

  // --- the 緊急情報 category and the priority agree on screen ---------------------------------
  // Choosing a category that is an emergency by default (緊急情報) switches the priority to
  // 緊急, as the server will; unticking it puts back 通常 if this script chose 緊急.
  var autoEmergency = false;
  var priorityNote = form.querySelector("[data-kw-priority-note]");

  function priorityInput(value) {
    return form.querySelector('input[name="priority"][value="' + value + '"]');
  }

  // The 時間外配信 reason is asked for only when 時間外配信 is chosen.
  var outOfHoursReason = form.querySelector("[data-kw-out-of-hours-reason]");

  function syncOutOfHoursReason() {
    if (!outOfHoursReason) return;
    var chosen = form.querySelector('input[name="priority"][value="out_of_hours"]:checked');
    outOfHoursReason.hidden = !chosen;
  }

  function syncPriority() {
    var emergencyCategory = form.querySelector('input[name="categories"][data-emergency="1"]:checked');
    var emergency = priorityInput("emergency");
    var normal = priorityInput("normal");
    if (!emergency || emergency.type !== "radio") return;
    if (emergencyCategory && !emergency.checked) {
      emergency.checked = true;
      autoEmergency = true;
      if (priorityNote) {
        priorityNote.textContent = "「緊急情報」カテゴリを選んだため、優先度を「緊急」にしました。緊急配信の理由を入力してください。";
      }
    } else if (!emergencyCategory && autoEmergency && emergency.checked && normal) {
      normal.checked = true;
      autoEmergency = false;
      if (priorityNote) priorityNote.textContent = "優先度を「通常」に戻しました。";
    }
    emergency.disabled = false;
    form.querySelectorAll('input[name="priority"]').forEach(function (input) {
      if (input !== emergency) input.disabled = Boolean(emergencyCategory);
    });
  }

  form.addEventListener("input", function (event) {
    var name = event.target.name || "";
    if (name.indexOf(PREFIX + "-") === 0) refresh();
    if (TIMING_FIELDS.indexOf(name) !== -1) scheduleEffective();
  });
  form.addEventListener("change", function (event) {
    var name = event.target.name || "";
    if (name.indexOf(PREFIX + "-") === 0) refresh();
    if (name === "categories") syncPriority();
    if (name === "priority") autoEmergency = false;
    if (name === "priority" || name === "categories") syncOutOfHoursReason();
    if (TIMING_FIELDS.indexOf(name) !== -1) {
      if (name === "requested_at" && event.target.value) {
        var at = form.querySelector('input[name="timing"][value="at"]');
        if (at) at.checked = true;
      }
      scheduleEffective();
    }
  });

  renumber();
  refresh();
  syncPriority();
  syncOutOfHoursReason();
  var errors = document.getElementById("kw-form-errors");
  if (errors) errors.focus();
})();
