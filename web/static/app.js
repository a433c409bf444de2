// Small page behaviours, kept visible: times in the viewer's zone, the browser's zone on forms,
// the workbench's connection indicator, its talk-time stopwatch, and keeping keyboard focus.
(function () {
  function localise(root) {
    root.querySelectorAll("time[data-local]").forEach(function (el) {
      var d = new Date(el.getAttribute("datetime"));
      if (isNaN(d)) return;
      el.textContent = el.dataset.local === "time"
        ? d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })
        : d.toLocaleString([], { dateStyle: "medium", timeStyle: "short" });
    });
    var tz = Intl.DateTimeFormat().resolvedOptions().timeZone || "";
    root.querySelectorAll("input[data-browser-tz]").forEach(function (el) { el.value = tz; });
  }
  document.addEventListener("DOMContentLoaded", function () { localise(document); });
  document.addEventListener("htmx:afterSettle", function () { localise(document); });
  document.addEventListener("htmx:oobAfterSwap", function () { localise(document); });

  // A swap that replaces the focused button (Ready, Call, Hang up…) would drop keyboard focus to
  // <body>. Move it to the next action instead: the first [data-focus-here] this message brought,
  // else the first one on the page.
  var swapped = [];
  document.addEventListener("htmx:oobAfterSwap", function (e) { swapped.push(e.target); });
  document.addEventListener("htmx:wsAfterMessage", function () {
    var elts = swapped.filter(function (el) { return el && el.isConnected; });
    swapped = [];
    var active = document.activeElement;
    if (active && active !== document.body && active.isConnected) return;
    var target = null;
    elts.some(function (el) {
      target = el.matches("[data-focus-here]") ? el : el.querySelector("[data-focus-here]");
      return target;
    });
    target = target || document.querySelector("[data-focus-here]");
    if (target) target.focus({ preventScroll: true });
  });

  // Talk time of the live call, counted from when "Talking" appeared.
  setInterval(function () {
    document.querySelectorAll("[data-stopwatch]").forEach(function (el) {
      if (!el.dataset.start) el.dataset.start = String(Date.now());
      var s = Math.floor((Date.now() - Number(el.dataset.start)) / 1000);
      el.textContent = Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0");
    });
  }, 1000);

  // While the socket is down the workbench cannot act: say so, and make its controls inert.
  function connection(ok, text) {
    var body = document.querySelector(".workbench-body");
    if (body) body.inert = !ok;
    var el = document.getElementById("connection");
    if (el && !ok) { el.lastChild.textContent = " " + text(el); el.className = "connection lost"; }
  }
  document.addEventListener("htmx:wsOpen", function () { connection(true); });
  document.addEventListener("htmx:wsClose", function (e) {
    var code = e.detail.event && e.detail.event.code;
    var retrying = [1006, 1011, 1012, 1013].indexOf(code) >= 0;  // the ws extension reconnects on these
    connection(false, function (el) { return retrying ? el.dataset.lost : el.dataset.closed; });
  });
})();
