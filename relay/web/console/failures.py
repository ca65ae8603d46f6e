"""The failures inbox: dead deliveries and failed events grouped by why, replayed together."""

from __future__ import annotations

import re
import time
from typing import Any

from flask import flash, redirect, render_template, request, url_for

from relay.store.failures import group_failures
from relay.store.replay import replay_event
from relay.web.console import console
from relay.web.openapi import MAX_ID
from relay.web.services import services


@console.get("/failures")
def failures() -> Any:
    return render_template("failures.html",
                           groups=group_failures(services().store.failures()))


@console.post("/failures/replay")
def replay_group() -> Any:
    ids = sorted({int(i) for i in request.form.getlist("event")
                  if re.fullmatch(r"[0-9]{1,19}", i) and 1 <= int(i) <= MAX_ID})
    results = [replay_event(services().store, services().registry.get, i, time.time())
               for i in ids]
    failed = [r for r in results if not r.ok]
    flash(f"Replayed {len(results)} event(s); {len(failed)} with problems"
          + (f": {failed[0].message}" if failed else ""), "error" if failed else "ok")
    return redirect(url_for("console.failures"))
