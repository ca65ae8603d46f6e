// Times in the browser's own zone: every <time datetime="...Z"> written in UTC by the page
// is shown in local time, the UTC text kept as its tooltip; again in what refresh.js swaps
// in. Without JavaScript the UTC text stays.
"use strict";

(function () {
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;

  function localise(root) {
    root.querySelectorAll("time[datetime]").forEach((node) => {
      const when = new Date(node.getAttribute("datetime"));
      if (Number.isNaN(when.getTime()) || node.dataset.zone) return;
      node.title = node.textContent;
      node.textContent = when.toLocaleString(undefined, {
        year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit",
        second: "2-digit", hour12: false, timeZoneName: "short"});
      node.dataset.zone = zone;
    });
  }

  document.addEventListener("DOMContentLoaded", () => localise(document));
  document.addEventListener("relay:refreshed", (event) => localise(event.detail));
})();
