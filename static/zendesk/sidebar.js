// The Zendesk sidebar page. Inside Zendesk, the Zendesk Apps Framework SDK tells it which ticket is open; it then
// loads that ticket's panel (htmx sends the page's Authorization header, never a cookie) and fits the iframe to it.
// Given a ticket_id (a link, a test), the panel is already there and this script only resizes.
(function () {
  "use strict";
  var root = document.getElementById("sidebar");
  var client = null;

  function resize() {
    if (client) {
      client.invoke("resize", { width: "100%", height: Math.min(document.body.scrollHeight + 8, 900) + "px" });
    }
  }

  if (!root) {
    return;
  }
  if (window.ZAFClient && typeof window.ZAFClient.init === "function") {
    client = window.ZAFClient.init() || null;
  }
  document.body.addEventListener("htmx:afterSwap", resize);
  if (root.dataset.ticketKnown === "true") {
    resize();
    return;
  }
  var waiting = document.querySelector("[data-testid=waiting]");
  if (!client) {
    if (waiting) {
      waiting.textContent = "Open this page from the Agent Console app in a Zendesk ticket.";
    }
    return;
  }
  client.get("ticket.id").then(function (data) {
    var ticketId = data && data["ticket.id"];
    if (!ticketId) {
      return;
    }
    var url = root.dataset.panelUrl.replace("__ticket__", encodeURIComponent(String(ticketId)));
    window.htmx.ajax("GET", url, { source: root, target: "#panel", swap: "innerHTML" });
  });
})();
