"""Capture, then draft, in the console: open and close windows, the samples of a name, a
sample's page with its drafted mapping (shown and downloadable, never written from here),
and its replay through the mapping once one exists. Samples are never delivered, also when
a mapping serves the name."""

from __future__ import annotations

import time
from typing import Any

from flask import Response, abort, flash, redirect, render_template, request, url_for

from relay.capture.draft import draft
from relay.capture.samples import replay_sample
from relay.capture.windows import open_window
from relay.errors import RelayError
from relay.store.display import pretty_body
from relay.web.console import console
from relay.web.openapi import MAX_ID
from relay.web.services import services

SAMPLE_ID = f"<int(min=1, max={MAX_ID}):sample_id>"


@console.get("/capture")
def capture() -> Any:
    store = services().store
    name = request.args.get("name") or None
    return render_template("capture.html", windows=store.open_windows(time.time()),
                           samples=store.samples(name, 100), name=name or "",
                           cap=services().settings.capture_samples)


@console.post("/capture/open")
def capture_open() -> Any:
    name = request.form.get("name", "").strip()
    try:
        minutes = float(request.form.get("minutes") or 15)
        window = open_window(services().store, name, minutes, time.time())
    except (ValueError, RelayError) as exc:
        flash(f"Cannot open a window: {exc}", "error")
        return redirect(url_for("console.capture"))
    flash(f"Capturing /hooks/{name} for {minutes:g} minute(s): requests are kept as samples "
          "and not delivered.", "ok")
    return redirect(url_for("console.capture", name=window["name"]))


@console.post("/capture/close")
def capture_close() -> Any:
    name = request.form.get("name", "")
    closed = services().store.close_window(name, time.time())
    flash(f"Closed the window of /hooks/{name}." if closed else "That window was not open.",
          "ok")
    return redirect(url_for("console.capture", name=name))


def _sample(sample_id: int) -> dict[str, Any]:
    found = services().store.sample(sample_id)
    if found is None:
        abort(404, f"no sample {sample_id}")
    return found


@console.get(f"/capture/samples/{SAMPLE_ID}")
def sample(sample_id: int) -> Any:
    found = _sample(sample_id)
    drafted, error = None, None
    if request.args.get("draft"):
        try:
            drafted = draft(found["name"], found)
        except RelayError as exc:
            error = str(exc)
    return render_template("sample.html", sample=found, body=pretty_body(found["body"]),
                           drafted=drafted, error=error,
                           mapped=services().registry.get(found["name"]) is not None)


@console.get(f"/capture/samples/{SAMPLE_ID}/draft.yaml")
def sample_draft(sample_id: int) -> Any:
    found = _sample(sample_id)
    try:
        drafted = draft(found["name"], found)
    except RelayError as exc:
        abort(422, str(exc))
    return Response(drafted.yaml, content_type="text/yaml; charset=utf-8", headers={
        "Content-Disposition": f"attachment; filename={found['name']}.yaml"})


@console.get(f"/capture/samples/{SAMPLE_ID}/body")
def sample_body(sample_id: int) -> Any:
    """The sample's body, byte-exact, to save as the draft's examples/ file."""
    found = _sample(sample_id)
    return Response(found["body"], content_type="application/octet-stream", headers={
        "Content-Disposition": f"attachment; filename={found['name']}-sample-{sample_id}"})


@console.post(f"/capture/samples/{SAMPLE_ID}/replay")
def sample_replay(sample_id: int) -> Any:
    found = _sample(sample_id)
    replayed = replay_sample(services().store, services().registry.get(found["name"]), found,
                             time.time())
    flash(replayed.message, "ok" if replayed.ok else "error")
    if replayed.event_id is not None:
        return redirect(url_for("console.event", event_id=replayed.event_id))
    return redirect(url_for("console.sample", sample_id=sample_id))
