"""The playground: a mapping's YAML (prefilled from its file, or from an event's mapping with
the event's body and headers) and a body side by side. Every change is tried through POST
/api/playground (static/playground.js): the preview, the rule that chose each flow, the
mapping's own tests, and the YAML's problems at their lines; when each request would be sent
(as if the body arrived at the time given, else now) and what it cancels. Without JavaScript
the Preview button posts the form and the page shows the same. Download answers the YAML as a file;
Save (RELAY_PLAYGROUND_WRITE) writes it to the mappings folder through the API.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Response, abort, render_template, request

from relay.mapping.model import iso_utc
from relay.mapping.schedule import ScheduleError
from relay.sources.endpoint import valid_name
from relay.sources.folder import find_file
from relay.sources.selftest import arrival
from relay.web import sandbox
from relay.web.console import console
from relay.web.playground_api import MAX_YAML, NEW_NAME, too_much, try_spec
from relay.web.services import services


@console.route("/playground", methods=["GET", "POST"])
def playground() -> Any:
    names = services().registry.names()
    if request.method == "POST":
        form = {key: request.form.get(key, "")
                for key in ("mapping", "yaml", "body", "headers", "now")}
    else:
        form = _prefill(names)
    result, problem = None, None
    if request.method == "POST":
        result, problem = _try(form)
    return render_template("playground.html", mappings=names, form=form, result=result,
                           problem=problem, write=services().settings.playground_write,
                           max_yaml=MAX_YAML)


def _prefill(names: list[str]) -> dict[str, str]:
    """The form as a link opens it: ?mapping=NAME (its file), ?event=ID (its mapping, body,
    headers and arrival time), ?new (blank), else the first mapping."""
    form = {"mapping": request.args.get("mapping", names[0] if names else ""), "yaml": "",
            "body": "", "headers": "", "now": ""}
    event_id = request.args.get("event", type=int)
    if event_id is not None:
        event = services().store.event(event_id) if 1 <= event_id < 2**63 else None
        if event is None:
            abort(404, f"no event {event_id}")
        # The event's own arrival time: its schedule previews as it was planned (a replay
        # too keeps that time).
        form.update(mapping=event["mapping"], body=event["body"].decode("utf-8", "replace"),
                    headers="\n".join(f"{k}: {v}" for k, v in event["headers"].items()),
                    now=iso_utc(event["received_at"]))
    if "new" in request.args:
        form["mapping"] = ""
    elif form["mapping"]:
        form["yaml"] = mapping_text(form["mapping"])
    return form


def mapping_text(name: str) -> str:
    """The text of the mapping file serving /hooks/<name> ("" when there is none)."""
    if not valid_name(name):
        return ""
    file = find_file(Path(services().settings.mappings), name)
    if file is None:
        return ""
    try:
        with file.open(encoding="utf-8", errors="replace") as f:
            return f.read(MAX_YAML + 1)
    except OSError:
        return ""


def headers_of(text: str) -> dict[str, str]:
    """`Name: value` lines to a dict (lines without a colon are left out)."""
    lines = (line.partition(":") for line in text.splitlines() if ":" in line)
    return {name.strip(): value.strip() for name, _, value in lines if name.strip()}


def _try(form: dict[str, str]) -> tuple[dict[str, Any] | None, str | None]:
    name = form["mapping"] or NEW_NAME
    wrong = too_much(name, form["yaml"], form["body"])
    if wrong:
        return None, wrong[1]
    try:
        now = arrival(form["now"].strip()) if form["now"].strip() else None
    except ScheduleError as exc:
        return None, f"Arrives at: {exc}"
    try:
        return try_spec({"name": name, "yaml": form["yaml"], "body": form["body"],
                         "headers": headers_of(form["headers"]), "query": {},
                         "now": now}), None
    except sandbox.SandboxError as exc:
        return None, str(exc)


@console.post("/playground/download")
def download() -> Any:
    """The edited YAML as a file, NAME.yaml (the console's form: its CSRF field is checked)."""
    name = request.form.get("mapping", "")
    # A form sends a textarea's lines ended by CRLF: the file gets the editor's own \n.
    text = request.form.get("yaml", "").replace("\r\n", "\n")
    if len(text) > MAX_YAML:
        abort(413, f"the YAML is longer than {MAX_YAML} characters")
    filename = f"{name}.yaml" if valid_name(name) else "mapping.yaml"
    return Response(text, content_type="application/yaml; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})
