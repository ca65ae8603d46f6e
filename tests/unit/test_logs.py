"""Log lines: JSON when asked, control characters escaped in values."""

from __future__ import annotations

import json
import logging

from relay.logs import EscapingRecord, JsonFormatter


def test_json_log_lines():
    """RELAY_LOG_FORMAT=json: each log line is one JSON object."""
    record = logging.LogRecord("relay.inbound", logging.INFO, __file__, 1,
                               "inbound mapping=%s status=%d", ("leads", 202), None)
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "inbound mapping=leads status=202"
    assert (line["level"], line["logger"]) == ("info", "relay.inbound")
    assert line["time"].endswith("+00:00")


def test_values_cannot_start_a_line_of_their_own():
    """A value a request chose (a mapping name from its URL) is escaped; numbers are not."""
    record = EscapingRecord("relay.inbound", logging.INFO, __file__, 1,
                            "refused mapping=%s status=%d", ("x\nFAKE line", 401), None)
    assert record.getMessage() == "refused mapping=x\\nFAKE line status=401"
