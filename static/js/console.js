// Agent Console: keyboard flow, request errors, SLA timers. No inline scripts: the pages work without this file,
// and a strict Content-Security-Policy (script-src 'self') allows it.
(function () {
  "use strict";

  var toast = null;
  var toastTimer = null;

  function showToast(message) {
    toast = toast || document.getElementById("toast");
    if (!toast) return;
    toast.textContent = message;
    toast.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(function () { toast.hidden = true; }, 8000);
  }

  // --- Request errors: htmx swaps nothing for them by default, so say what happened. ----------------------------
  function errorText(event) {
    var xhr = event.detail && event.detail.xhr;
    if (!xhr) return "The request failed.";
    var body = (xhr.responseText || "").trim();
    var plain = (xhr.getResponseHeader("Content-Type") || "").indexOf("text/plain") === 0;
    if (xhr.status === 403) return "Refused (403): your account may not do this, or your session changed. Reload the page.";
    if (plain && body) return body;
    if (xhr.status >= 500) return "The server failed (HTTP " + xhr.status + "). Nothing was decided; try again.";
    return "The request failed (HTTP " + xhr.status + ").";
  }
  document.addEventListener("htmx:responseError", function (event) { showToast(errorText(event)); });
  document.addEventListener("htmx:sendError", function () {
    showToast("Could not reach the server. Check your connection; nothing was decided.");
  });
  document.addEventListener("htmx:timeout", function () { showToast("The server took too long to answer."); });

  // After a decision the card offers "Next pending": put the focus there so Enter (or n) moves on.
  document.addEventListener("htmx:afterSwap", function (event) {
    var next = event.detail && event.detail.target && document.querySelector("[data-next-button]");
    if (next && document.activeElement === document.body) next.focus();
    updateTimers();
  });

  // --- SLA timers ---------------------------------------------------------------------------------------------
  function words(ms) {
    var minutes = Math.round(Math.abs(ms) / 60000);
    if (minutes < 1) return "less than a minute";
    if (minutes < 60) return minutes + " min";
    var hours = Math.floor(minutes / 60);
    return hours + " h " + (minutes % 60) + " min";
  }
  function updateTimers() {
    var now = Date.now();
    document.querySelectorAll("[data-due]").forEach(function (el) {
      var due = Date.parse(el.getAttribute("data-due"));
      if (isNaN(due)) return;
      var left = due - now;
      el.textContent = left > 0 ? "due in " + words(left) : "overdue by " + words(left);
      el.classList.toggle("sla-overdue", left <= 0);
    });
  }
  setInterval(updateTimers, 30000);

  // --- Keyboard -----------------------------------------------------------------------------------------------
  var pendingG = false;

  function typing(target) {
    if (!target || !target.tagName) return false;
    var tag = target.tagName.toLowerCase();
    return tag === "input" || tag === "textarea" || tag === "select" || target.isContentEditable;
  }

  function currentCard() {
    var active = document.activeElement;
    var card = active && active.closest ? active.closest("[data-decision]") : null;
    return card || document.querySelector("[data-decision]");
  }

  function inCardOrPage(key) {
    var card = currentCard();
    return (card && card.querySelector('[data-key="' + key + '"]')) || document.querySelector('[data-key="' + key + '"]');
  }

  function navItems() { return Array.prototype.slice.call(document.querySelectorAll("[data-nav-item]")); }

  function move(step) {
    var items = navItems();
    if (!items.length) return;
    var index = items.findIndex(function (el) { return el.classList.contains("is-current"); });
    index = Math.max(0, Math.min(items.length - 1, index + step));
    items.forEach(function (el) { el.classList.remove("is-current"); });
    items[index].classList.add("is-current");
    items[index].scrollIntoView({ block: "nearest" });
  }

  function submitNext() {
    var form = document.getElementById("next-form");
    if (form) form.requestSubmit ? form.requestSubmit() : form.submit();
  }

  function toggleShortcuts() {
    var dialog = document.getElementById("shortcuts");
    if (!dialog) return;
    if (dialog.open) dialog.close(); else dialog.showModal();
  }

  document.addEventListener("click", function (event) {
    if (event.target.closest && event.target.closest("[data-shortcuts-open]")) toggleShortcuts();
  });

  // Enter in a rating comment never picks a thumb (the form's disabled first button already stops it; this
  // also covers browsers that submit anyway).
  document.addEventListener("keydown", function (event) {
    var target = event.target;
    if (event.key === "Enter" && target.matches && target.matches(".rate input[name=comment]")) {
      event.preventDefault();
    }
  }, true);

  document.addEventListener("keydown", function (event) {
    if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.key === "Escape" && typing(event.target)) { event.target.blur(); return; }
    if (typing(event.target)) return;
    var dialog = document.getElementById("shortcuts");
    if (dialog && dialog.open && event.key !== "?") return;
    var key = event.key;
    if (pendingG) {
      pendingG = false;
      if (key === "q") { window.location.href = "/"; event.preventDefault(); }
      if (key === "t") { window.location.href = "/tickets/"; event.preventDefault(); }
      return;
    }
    var el;
    switch (key) {
      case "?": toggleShortcuts(); break;
      case "g": pendingG = true; setTimeout(function () { pendingG = false; }, 1500); break;
      case "/":
        el = document.querySelector("[data-testid=ticket-search]") || document.querySelector("[data-search]");
        if (el) el.focus(); break;
      case "n": submitNext(); break;
      case "j": move(1); break;
      case "k": move(-1); break;
      case "Enter": case "o":
        el = document.querySelector("[data-nav-item].is-current [data-nav-link]");
        if (el) el.click(); else return;
        break;
      case "a": case "t": case "c":
        el = inCardOrPage(key);
        if (el) el.click(); else return;
        break;
      case "r": case "f":
        el = inCardOrPage(key);
        if (el) { el.scrollIntoView({ block: "center" }); el.focus(); } else return;
        break;
      case "e":
        el = inCardOrPage("e");
        if (el) {
          var details = el.closest("details");
          if (details) details.open = true;
          var area = details && details.querySelector("textarea");
          if (area) area.focus();
        } else return;
        break;
      default: return;
    }
    event.preventDefault();
  });

  document.addEventListener("DOMContentLoaded", updateTimers);
})();
