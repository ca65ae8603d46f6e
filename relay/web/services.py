"""What the views of one app share: its settings, store (console sessions too), mappings
and login limit, kept on the app (`app.extensions["relay"]`) so that test apps side by side
never see each other's."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask, current_app

from relay.config import Settings
from relay.sources.registry import Registry
from relay.store import Store
from relay.web.limits import RateLimit


@dataclass
class Services:
    settings: Settings
    store: Store
    registry: Registry
    # Wrong admin tokens per client address: after 5 in a minute, every token from that
    # address is refused unchecked (429) until the oldest of them is a minute old.
    login_limit: RateLimit


def services(app: Flask | None = None) -> Services:
    """The services of `app`, by default of the app handling the current request."""
    found: Services = (app or current_app).extensions["relay"]
    return found
