// Small page behaviours, kept visible: times in the viewer's zone, the browser's zone on forms,
// and the connection indicator of the workbench.
(function () {
  function localise(root) {
    root.querySelectorAll("time[data-local]").forEach(function (el) {
      var d = new Date(el.getAttribute("datetime"));
      if (isNaN(d)) return;
      el.textContent = el.dataset.local === "time" ? d.toLocaleTimeString() : d.toLocaleString();
    });
    var tz = Intl.DateTimeFormat().resolvedOptions().timeZone || "";
    root.querySelectorAll("input[data-browser-tz]").forEach(function (el) { el.value = tz; });
  }
  document.addEventListener("DOMContentLoaded", function () { localise(document); });
  document.addEventListener("htmx:afterSettle", function () { localise(document); });
  document.addEventListener("htmx:oobAfterSwap", function () { localise(document); });
  document.addEventListener("htmx:wsClose", function () {
    var el = document.getElementById("connection");
    if (el) { el.textContent = "Connection lost — reconnecting…"; el.className = "connection lost"; }
  });
})();
