"""Logging: one line per inbound request and per delivery attempt; ids and sizes, no payloads.

RELAY_LOG_FORMAT=json prints each line as one JSON object, for log collectors.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime
from typing import Any

from relay.config import Settings
from relay.errors import RelayError

# Characters that would let a value start a forged line, or hide part of one, in a text log.
_CONTROL = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]")


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


def escape(value: Any) -> Any:
    """A log line's value with control characters escaped: `a\nb` logs as `a\\nb`. Numbers
    pass as they are, for %d and %.1f."""
    if isinstance(value, int | float) or value is None:
        return value
    text = str(value)
    if not _CONTROL.search(text):
        return value
    return _CONTROL.sub(lambda m: m.group(0).encode("unicode_escape").decode("ascii"), text)


class EscapingRecord(logging.LogRecord):
    """A record whose arguments are escaped: whatever a request put in a value (a mapping
    name from its URL, a header in a refusal's reason) stays on its own line. The message
    itself is the relay's own text, and may span lines on purpose."""

    def getMessage(self) -> str:
        if self.args:
            if isinstance(self.args, dict):
                self.args = {k: escape(v) for k, v in self.args.items()}
            else:
                self.args = tuple(escape(a) for a in self.args)
        return super().getMessage()


def configure_logging(settings: Settings | None = None, level: int = logging.INFO) -> None:
    """Log to stderr unless the host (pytest, an embedding app) already set logging up; in
    either case, escape control characters in the values of every record.

    Without `settings`, RELAY_LOG_FORMAT is read through Settings; a configuration with
    problems logs as text here, and the caller's own Settings.from_env() reports them."""
    logging.setLogRecordFactory(EscapingRecord)
    root = logging.getLogger()
    if not root.handlers:
        if settings is None:
            try:
                settings = Settings.from_env()
            except RelayError:
                settings = Settings()
        handler = logging.StreamHandler()
        json_lines = settings.log_format == "json"
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
