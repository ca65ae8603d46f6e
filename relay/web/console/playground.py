"""The playground: a body (and headers) through a loaded mapping, previewed; nothing sent."""

from __future__ import annotations

from typing import Any

from flask import render_template, request

from relay.web.api import preview_body
from relay.web.console import console
from relay.web.services import services


@console.route("/playground", methods=["GET", "POST"])
def playground() -> Any:
    names = services().registry.names()
    form = {"mapping": request.form.get("mapping", names[0] if names else ""),
            "body": request.form.get("body", ""), "headers": request.form.get("headers", "")}
    result = None
    if request.method == "POST":
        result = _preview(form)
    return render_template("playground.html", mappings=names, form=form, result=result)


def _preview(form: dict[str, str]) -> dict[str, Any]:
    mapping = services().registry.get(form["mapping"])
    if mapping is None:
        return {"status": "failed", "errors": [{"field": "mapping", "message": "not found"}]}
    lines = (line.partition(":") for line in form["headers"].splitlines() if ":" in line)
    headers = {name.strip(): value.strip() for name, _, value in lines}
    return preview_body(mapping, form["body"].encode(), headers, {})
