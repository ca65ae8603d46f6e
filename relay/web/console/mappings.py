"""The Mappings page: every mapping file, the URL to paste into its sender, its state (as
/readyz and `relay check` say it: relay/sources/status.py), its last event and its last day
in figures (one store query for all of them)."""

from __future__ import annotations

import time
from typing import Any

from flask import render_template, request

from relay.sources.status import folder_states
from relay.web.console import console
from relay.web.public_url import public_base
from relay.web.services import services

DAY = 86400.0


@console.get("/mappings")
def mappings() -> Any:
    relay = services()
    states = folder_states(relay.registry.files())
    stats = relay.store.mapping_stats([s.name for s in states], time.time() - DAY)
    base, guessed = public_base(relay.settings, request.environ)
    rows = [{"state": s, "url": f"{base}/hooks/{s.name}", **stats.get(s.name, {})}
            for s in states]
    return render_template("mappings.html", rows=rows, guessed=guessed,
                           folder=relay.settings.mappings)
