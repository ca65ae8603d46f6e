// Times in the browser's own zone: every <time datetime="...Z"> written in UTC by the page
// is shown in local time, the UTC text kept as its tooltip. Without JavaScript the UTC text
// stays.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  document.querySelectorAll("time[datetime]").forEach((node) => {
    const when = new Date(node.getAttribute("datetime"));
    if (Number.isNaN(when.getTime())) return;
    node.title = node.textContent;
    node.textContent = when.toLocaleString(undefined, {
      year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit",
      second: "2-digit", hour12: false, timeZoneName: "short"});
    node.dataset.zone = zone;
  });
});
