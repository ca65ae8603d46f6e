// Lists that refresh themselves (the events list, the capture page): every few seconds this
// same page (same filters) is fetched again, and each element marked data-refresh is swapped
// for its fresh copy, found by its id. It waits while someone is editing a form marked
// data-pause (a field has focus or holds an edit not yet applied) and while the tab is
// hidden; a page with nothing marked (an older page of events) is left alone.
"use strict";

(function () {
  const EVERY = 5000;
  const status = document.getElementById("refresh");
  const forms = [...document.querySelectorAll("form[data-pause]")];
  if (!document.querySelector("[data-refresh]")) {
    return;
  }
  // What the fields held when the page came: a field that differs is an edit in progress.
  const initial = new Map(forms.flatMap((form) =>
    [...form.elements].filter((e) => e.name).map((e) => [e, e.value])));

  function typing() {
    const active = document.activeElement;
    if (active && active.tagName !== "BUTTON" && forms.some((f) => f.contains(active))) {
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
      say("Paused while you edit the form");
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
      if (typing()) {
        return;
      }
      document.querySelectorAll("[data-refresh]").forEach((old) => {
        const fresh = page.getElementById(old.id);
        if (fresh) {
          const node = document.importNode(fresh, true);
          old.replaceWith(node);
          document.dispatchEvent(new CustomEvent("relay:refreshed", {detail: node}));
        }
      });
      say("Refreshed " + new Date().toLocaleTimeString());
    } catch (error) {
      say("Not refreshed: the relay did not answer");
    }
  }

  setInterval(refresh, EVERY);
})();
