// The message page keeps itself current: every few seconds it fetches the page's live
// fragment (same session) and swaps in each [data-live] part that changed.
(function () {
  "use strict";
  var root = document.querySelector("[data-live-url]");
  if (!root || !window.fetch || !window.DOMParser) return;
  var url = root.getAttribute("data-live-url");
  var every = parseInt(root.getAttribute("data-live-every"), 10) || 3000;
  function swap(html) {
    var fresh = new DOMParser().parseFromString(html, "text/html");
    fresh.querySelectorAll("[data-live]").forEach(function (part) {
      var name = part.getAttribute("data-live");
      var here = document.querySelector('[data-live="' + name + '"]');
      if (here && here.innerHTML !== part.innerHTML) here.innerHTML = part.innerHTML;
    });
  }
  function tick() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (answer) {
        if (answer.status === 401) { window.location.reload(); return null; }
        return answer.ok ? answer.text() : null;
      })
      .then(function (html) { if (html) swap(html); })
      .catch(function () { /* offline for a moment: the next tick tries again */ })
      .then(function () { window.setTimeout(tick, every); });
  }
  window.setTimeout(tick, every);
})();
