"""Logging: one line per inbound request and per delivery attempt; ids and sizes, no payloads."""

from __future__ import annotations

import logging


def configure_logging(level: int = logging.INFO) -> None:
    """Log to stderr unless the host (pytest, an embedding app) already set logging up."""
    if not logging.getLogger().handlers:
        logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("relay").setLevel(level)
