"""Logging: one line per inbound request and per delivery attempt; ids and sizes, no payloads.

RELAY_LOG_FORMAT=json prints each line as one JSON object, for log collectors.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def configure_logging(level: int = logging.INFO) -> None:
    """Log to stderr unless the host (pytest, an embedding app) already set logging up."""
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler()
        json_lines = os.environ.get("RELAY_LOG_FORMAT", "").lower() == "json"
        handler.setFormatter(JsonFormatter() if json_lines else logging.Formatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s"))
        root.addHandler(handler)
        # Records skip what no format here prints and cost the most to find out: the
        # caller's frame and the multiprocessing process name (the logging HOWTO's
        # "Optimization" section lists these switches). Thread and process ids stay: other
        # formats in the process use them (gunicorn's prints `[%(process)d]`).
        logging.logMultiprocessing = False
        logging._srcfile = None
    logging.getLogger("relay").setLevel(level)
