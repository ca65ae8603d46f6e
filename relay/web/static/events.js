// The events list refreshes itself: every few seconds it fetches this same page (same
// filters) and swaps in the new table. It waits while someone is typing in the filters (a
// field has focus or holds an edit not yet applied), while the tab is hidden, and on older
// pages (?before=...), which do not change at the top.
"use strict";

(function () {
  const EVERY = 5000;
  const form = document.getElementById("filters");
  const table = document.getElementById("events");
  const status = document.getElementById("refresh");
  if (!form || !table || new URLSearchParams(location.search).has("before")) {
    return;
  }
  // What the fields held when the page came: a field that differs is an edit in progress.
  const initial = new Map([...form.elements].filter((e) => e.name).map((e) => [e, e.value]));

  function typing() {
    const active = document.activeElement;
    if (active && form.contains(active) && active.tagName !== "BUTTON") {
      return true;
    }
    return [...initial].some(([field, value]) => field.value !== value);
  }

  function say(text) {
    if (status) {
      status.textContent = text;
    }
  }

  async function refresh() {
    if (document.hidden) {
      return;
    }
    if (typing()) {
      say("Paused while you edit the filters");
      return;
    }
    try {
      const answer = await fetch(location.href, {credentials: "same-origin",
                                                 headers: {"Accept": "text/html"}});
      if (!answer.ok || answer.redirected) {
        say("Not refreshed (HTTP " + answer.status + "): reload the page");
        return;
      }
      const page = new DOMParser().parseFromString(await answer.text(), "text/html");
      const fresh = page.getElementById("events");
      if (fresh && !typing()) {
        document.getElementById("events").replaceWith(document.importNode(fresh, true));
        const older = document.getElementById("older");
        const freshOlder = page.getElementById("older");
        if (older && freshOlder) {
          older.replaceWith(document.importNode(freshOlder, true));
        }
        say("Refreshed " + new Date().toLocaleTimeString());
      }
    } catch (error) {
      say("Not refreshed: the relay did not answer");
    }
  }

  setInterval(refresh, EVERY);
})();
