// The playground: every change to the YAML, the body or the headers is tried (debounced)
// through POST /api/playground, and the result replaces the page's: the YAML's problems at
// their lines (marked in the line numbers beside the editor), the preview, the rule that
// chose each flow, the mapping's tests. Save writes the YAML through /api/playground/save.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("playground");
  if (!form) return;
  const yaml = document.getElementById("yaml");
  const lines = document.getElementById("lines");
  const result = document.getElementById("result");
  const status = document.getElementById("status");
  const mapping = document.getElementById("mapping");
  let timer = null;
  let sent = 0;  // answers to older requests are dropped
  let bad = new Map();  // line -> message

  const el = (tag, attrs, ...children) => {
    const node = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([k, v]) => node.setAttribute(k, v));
    children.forEach((c) => node.append(c));
    return node;
  };

  function numberLines() {
    const count = yaml.value.split("\n").length;
    lines.replaceChildren();
    for (let n = 1; n <= count; n++) {
      const span = el("span", {"data-line": n}, String(n));
      if (bad.has(n)) { span.className = "bad"; span.title = bad.get(n); }
      lines.append(span, "\n");
    }
    lines.scrollTop = yaml.scrollTop;
  }

  function headers() {
    const out = {};
    document.getElementById("headers").value.split("\n").forEach((line) => {
      const at = line.indexOf(":");
      if (at > 0) out[line.slice(0, at).trim()] = line.slice(at + 1).trim();
    });
    return out;
  }

  function goTo(line) {
    const starts = yaml.value.split("\n").slice(0, line - 1).reduce((n, l) => n + l.length + 1, 0);
    const end = yaml.value.indexOf("\n", starts);
    yaml.focus();
    yaml.setSelectionRange(starts, end < 0 ? yaml.value.length : end);
  }

  function render(answer) {
    bad = new Map();
    const parts = [];
    if (answer.error) {
      parts.push(el("p", {id: "outcome", class: "s-failed"}, answer.error));
    } else if (answer.problems.length) {
      parts.push(el("h2", {id: "outcome", class: "s-failed"}, "the YAML does not load"));
      const list = el("ul", {id: "problems"});
      answer.problems.forEach((p) => {
        const item = el("li", {"data-line": p.line || ""});
        if (p.line) {
          bad.set(p.line, p.message);
          const link = el("a", {href: "#yaml"}, `line ${p.line}`);
          link.addEventListener("click", (e) => { e.preventDefault(); goTo(p.line); });
          item.append(link, ": ");
        }
        if (p.key) item.append(el("b", {}, p.key), ": ");
        item.append(p.message);
        list.append(item);
      });
      parts.push(list);
    } else {
      const r = answer.preview;
      const state = r.status === "planned" ? "ok" : r.status;
      parts.push(el("h2", {id: "outcome", class: `s-${state}`},
                    r.status + (r.skipped ? ` (${r.skipped})` : "")));
      if (r.errors.length) {
        parts.push(el("ul", {id: "errors"}, ...r.errors.map(
          (e) => el("li", {}, el("b", {}, e.field), ": ", e.message))));
      }
      if (r.rules.length) {
        parts.push(el("ul", {id: "rules"}, ...r.rules.map((rule) => el("li", {}, rule || ""))));
      }
      if (r.times && r.times.length) {
        parts.push(el("ul", {id: "times"}, ...r.times.map(
          (t, n) => el("li", {}, `request ${n + 1}: ${t.text}`))));
      }
      if (r.cancels && r.cancels.length) {
        parts.push(el("ul", {id: "cancels"}, ...r.cancels.map((c) => el("li", {}, c.text))));
      }
      if (r.requests.length) {
        parts.push(el("pre", {id: "requests"}, JSON.stringify(r.requests, null, 2)));
      }
      if (r.planned > r.requests.length) {
        parts.push(el("p", {}, `… and ${r.planned - r.requests.length} more`));
      }
      if (r.lookups && r.lookups.length) {
        parts.push(el("p", {id: "lookups"}, "The worker first fetches " +
                      r.lookups.map((url) => `GET ${url}`).join(", ") +
                      "; a test's lookup: answer shows what it maps to (Tests below)."));
      }
      if (answer.tests.length) {
        parts.push(el("h2", {}, "Tests"), el("ul", {id: "tests"}, ...answer.tests.map((t) => {
          const item = el("li", {class: t.passed ? "pass" : "fail"},
                          `${t.passed ? "passed" : "failed"}: ${t.name}`);
          t.failures.forEach((f) => item.append(el("br"), f));
          return item;
        })));
      }
      if (answer.locked) parts.push(el("p", {}, `Served, it would answer 503: ${answer.locked}`));
      if (answer.unexpanded.length) {
        parts.push(el("p", {id: "unexpanded"}, "Not read from the environment here: " +
                      answer.unexpanded.map((n) => "${" + n + "}").join(", ")));
      }
    }
    result.replaceChildren(...parts);
    numberLines();
  }

  // The "Arrives at" field as UNIX seconds, as the API takes it: epoch seconds (or
  // milliseconds), or ISO 8601, in UTC unless it names a zone (as relay preview --now reads
  // it). undefined: empty (the relay's clock); NaN: not a time.
  function arrival() {
    const text = document.getElementById("now").value.trim();
    if (!text) return undefined;
    if (/^\d+(\.\d+)?$/.test(text)) {
      const number = Number(text);
      return number >= 1e11 ? number / 1000 : number;
    }
    const zoned = /(Z|[+-]\d\d:?\d\d)$/i.test(text) || !/\d[T ]\d/.test(text);
    return Date.parse(zoned ? text : `${text}Z`) / 1000;
  }

  async function tryIt() {
    const mine = ++sent;
    const now = arrival();
    if (Number.isNaN(now)) {
      status.textContent = "Arrives at: give ISO 8601 (2026-12-03T10:00:00Z) or epoch seconds";
      return;
    }
    status.textContent = "trying…";
    let answer;
    try {
      const response = await fetch(form.dataset.api, {
        method: "POST", credentials: "same-origin",
        headers: {"Content-Type": "application/json", "X-CSRF-Token": form.dataset.csrf},
        body: JSON.stringify({name: mapping.value, yaml: yaml.value,
                              body: document.getElementById("body").value,
                              headers: headers(), query: {}, now})});
      answer = await response.json();
    } catch (err) {
      answer = {error: `could not ask the relay: ${err}`};
    }
    if (mine !== sent) return;
    status.textContent = "";
    render(answer);
  }

  function later() {
    clearTimeout(timer);
    timer = setTimeout(tryIt, 300);
  }

  ["yaml", "body", "headers", "now"].forEach((id) =>
    document.getElementById(id).addEventListener("input", later));
  yaml.addEventListener("input", numberLines);
  yaml.addEventListener("scroll", () => { lines.scrollTop = yaml.scrollTop; });
  mapping.addEventListener("change", () => {
    // Another mapping's file (a new mapping: blank), with the body and headers kept.
    const url = new URL(window.location.href);
    url.search = mapping.value ? `?mapping=${encodeURIComponent(mapping.value)}` : "?new";
    window.location.href = url.toString();
  });
  const save = document.getElementById("save");
  if (save && !save.disabled) {
    save.addEventListener("click", async () => {
      const field = document.getElementById("save-name");  // a new mapping's name
      const name = mapping.value || (field ? field.value.trim() : "");
      if (!name) {
        status.textContent = "Name the new mapping first (Save as)";
        if (field) field.focus();
        return;
      }
      const response = await fetch(form.dataset.save, {
        method: "POST", credentials: "same-origin",
        headers: {"Content-Type": "application/json", "X-CSRF-Token": form.dataset.csrf},
        body: JSON.stringify({name, yaml: yaml.value})});
      const answer = await response.json();
      status.textContent = response.ok
        ? `saved ${answer.saved}` + (answer.error ? `; it does not load: ${answer.error}` : "")
        : answer.error + (answer.hint ? ` (${answer.hint})` : "");
    });
  }
  numberLines();
  if (yaml.value || document.getElementById("body").value) tryIt();
});
