"""The OpenAPI document of /api (served at /api/openapi.json); tests check the API against it
(tests/unit/web/test_api.py by hand, test_openapi.py with schemathesis)."""

from __future__ import annotations

from typing import Any

MAX_ID = 2**63 - 1  # the largest id either database stores; a larger one is simply 404
# /api/events's `since` (a duration, else a date: format "date") and `q` (3 or more
# characters but for spaces around them), which api.py checks as this document says.
SINCE_DURATION = r"^ *0*[1-9][0-9]*(\.[0-9]+)? *[smhd] *$"
SEARCH_TEXT = r"^\s*\S[\s\S]+\S\s*$"

_error = {"type": "object", "required": ["error"],
          "properties": {"error": {"type": "string"}, "hint": {"type": "string"}}}
_event_row = {
    "type": "object",
    "required": ["id", "mapping", "received_at", "status", "total", "pending", "delivered",
                 "dead"],
    "properties": {
        "id": {"type": "integer"}, "mapping": {"type": "string"},
        "received_at": {"type": "number", "description": "UNIX seconds"},
        "status": {"enum": ["accepted", "skipped", "failed"]},
        "errors": {"type": ["array", "null"]}, "note": {"type": ["string", "null"]},
        "total": {"type": "integer"}, "pending": {"type": "integer"},
        "delivered": {"type": "integer"}, "dead": {"type": "integer"},
        "looking": {"type": "integer", "description": "lookups still to fetch"},
        "last_error": {"type": ["string", "null"]},
    },
}
_attempt = {"type": "object", "required": ["started_at", "duration_ms", "outcome"],
            "properties": {"started_at": {"type": "number"}, "duration_ms": {"type": "number"},
                           "outcome": {"enum": ["delivered", "retry", "dead"]},
                           "http_status": {"type": ["integer", "null"]},
                           "engati_code": {"type": ["integer", "null"]},
                           "error": {"type": ["string", "null"]},
                           "worker": {"type": ["string", "null"]}}}
_delivery = {"type": "object",
             "required": ["id", "flow_key", "channel", "phone", "attributes", "status",
                          "attempts", "attempt_log"],
             "properties": {"id": {"type": "integer"}, "flow_key": {"type": "string"},
                            "channel": {"enum": ["whatsapp", "rcs"]},
                            "phone": {"type": "string"}, "attributes": {"type": "object"},
                            "status": {"enum": ["pending", "delivered", "dead"]},
                            "attempts": {"type": "integer",
                                         "description": "attempts since the delivery was last "
                                                        "(re)queued; attempt_log has them all"},
                            "last_error": {"type": ["string", "null"]},
                            "attempt_log": {"type": "array", "items": _attempt}}}
_lookup = {"type": "object",
           "required": ["id", "url", "status", "attempts", "tries"],
           "description": "A fetch the worker makes before mapping (a mapping's lookup:)",
           "properties": {"id": {"type": "integer"}, "item": {"type": ["integer", "null"]},
                          "url": {"type": "string"},
                          "status": {"enum": ["pending", "done", "skipped", "failed", "dead"]},
                          "attempts": {"type": "integer"}, "next_at": {"type": "number"},
                          "last_error": {"type": ["string", "null"]},
                          "tries": {"type": "array", "items": {
                              "type": "object", "properties": {
                                  "at": {"type": "number"}, "ms": {"type": "number"},
                                  "http": {"type": ["integer", "null"]},
                                  "error": {"type": ["string", "null"]}}}}}}
_event = {"type": "object",
          "required": ["id", "mapping", "received_at", "status", "body", "headers", "query",
                       "deliveries"],
          "properties": {"id": {"type": "integer"}, "mapping": {"type": "string"},
                         "received_at": {"type": "number"},
                         "status": {"enum": ["accepted", "skipped", "failed"]},
                         "body": {"type": "string"}, "headers": {"type": "object"},
                         "query": {"type": "object"}, "errors": {"type": ["array", "null"]},
                         "note": {"type": ["string", "null"]},
                         "deliveries": {"type": "array", "items": _delivery},
                         "lookups": {"type": "array", "items": _lookup}}}
_replayed = {"type": "object", "required": ["event_id", "ok", "message"],
             "properties": {"event_id": {"type": "integer"}, "ok": {"type": "boolean"},
                            "message": {"type": "string"}}}
_strings = {"type": "object", "additionalProperties": {"type": "string"}}


def _json(schema: dict[str, Any], description: str = "OK",
          headers: dict[str, Any] | None = None) -> dict[str, Any]:
    answer = {"description": description, "content": {"application/json": {"schema": schema}}}
    if headers:
        answer["headers"] = headers
    return answer


def _header(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "required": True, "schema": schema}


_seconds = {"type": "string", "pattern": "^[0-9]+$"}
# What any operation may answer besides its own outcomes.
_errors = {
    "401": _json(_error, "No or wrong token",
                 {"WWW-Authenticate": _header("Bearer", {"type": "string"})}),
    "404": _json(_error, "Not found, or the API is off (RELAY_ADMIN_TOKEN unset)"),
    "405": _json(_error, "Method not allowed",
                 {"Allow": _header("the methods the path takes", {"type": "string"})}),
    "429": _json(_error, "Too many wrong tokens from this address: nothing is checked until "
                         "Retry-After seconds have passed",
                 {"Retry-After": _header("seconds", _seconds)}),
    "503": _json(_error, "The database is unavailable right now",
                 {"Retry-After": _header("seconds", _seconds)}),
}
_bad = {"400": _json(_error, "Bad request")}
# Unsafe methods with the console's cookie need its CSRF token (bearer tokens need none).
_csrf = {"403": _json(_error, "Console session without its CSRF token (X-CSRF-Token)")}
_event_id = {"name": "event_id", "in": "path", "required": True,
             "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ID}}

_too_large = {"413": _json(_error, "The YAML (64 KB), the body (RELAY_MAX_BODY), the request, "
                                   "or what the run needed (memory, its answer) is too large")}
_playground_in = {"type": "object", "additionalProperties": False,
                  "properties": {"name": {"type": "string", "maxLength": 200,
                                          "pattern": "^([A-Za-z0-9][A-Za-z0-9_.-]*)?$",
                                          "description": "the mapping's name (NAME.yaml; its "
                                                         "tests read examples beside it)"},
                                 "yaml": {"type": "string", "maxLength": 65536,
                                          "description": "the mapping's text"},
                                 "body": {"type": "string"}, "headers": _strings,
                                 "query": _strings,
                                 "now": {"type": ["number", "null"], "exclusiveMinimum": 0,
                                         "exclusiveMaximum": 32503680000,
                                         "description": "when the body arrives, UNIX seconds "
                                                        "(for schedule: and quiet_hours:); "
                                                        "null or left out: the relay's "
                                                        "clock"}}}
_problem = {"type": "object", "required": ["line", "key", "message"],
            "properties": {"line": {"type": ["integer", "null"]}, "key": {"type": "string"},
                           "message": {"type": "string"}}}
_tried = {"type": "object", "required": ["problems", "locked", "preview", "tests", "unexpanded"],
          "properties": {
              "problems": {"type": "array", "items": _problem,
                           "description": "why the YAML does not load, by line; empty when "
                                          "it loads"},
              "locked": {"type": ["string", "null"]},
              "preview": {"type": ["object", "null"], "properties": {
                  "status": {"enum": ["planned", "failed", "skipped"]},
                  "skipped": {"type": ["string", "null"]}, "planned": {"type": "integer"},
                  "requests": {"type": "array"},
                  "rules": {"type": "array", "items": {"type": ["string", "null"]},
                            "description": "per request: which flow rule matched and why"},
                  "times": {"type": "array", "items": {
                      "type": "object", "required": ["send_at", "why", "text"],
                      "properties": {"send_at": {"type": ["string", "null"],
                                                 "description": "ISO 8601 UTC; null: at once"},
                                     "why": {"type": ["string", "null"]},
                                     "text": {"type": "string"}}},
                      "description": "per request: when it would be sent, and why (delay, "
                                     "payload time, quiet hours)"},
                  "cancels": {"type": "array", "items": {
                      "type": "object", "required": ["key", "mappings", "keep", "text"],
                      "properties": {"key": {"type": "string"},
                                     "mappings": {"type": "array",
                                                  "items": {"type": "string"}},
                                     "keep": {"type": "number",
                                              "description": "seconds it waits for a "
                                                             "delivery still to come"},
                                     "text": {"type": "string"}}},
                      "description": "what the body's cancel: cancels"},
                  "now": {"type": "string", "description": "the arrival time it assumed, "
                                                           "ISO 8601 UTC"},
                  "errors": {"type": "array"}}},
              "tests": {"type": "array", "items": {
                  "type": "object", "required": ["name", "passed", "failures"],
                  "properties": {"name": {"type": "string"}, "passed": {"type": "boolean"},
                                 "failures": {"type": "array", "items": {"type": "string"}}}}},
              "unexpanded": {"type": "array", "items": {"type": "string"},
                             "description": "${NAME}s left as written: the playground does "
                                            "not read the environment"}}}
_busy = {"429": _json(_error, "The playground is busy with other runs, or too many wrong "
                              "tokens from this address",
                      {"Retry-After": {"description": "seconds (wrong tokens only)",
                                       "schema": _seconds}})}

_NAME_PATTERN = "^[A-Za-z0-9][A-Za-z0-9_.-]*$"
_window = {"type": "object", "required": ["id", "name", "opened_at", "closes_at", "taken"],
           "properties": {"id": {"type": "integer"}, "name": {"type": "string"},
                          "opened_at": {"type": "number", "description": "UNIX seconds"},
                          "closes_at": {"type": "number", "description": "UNIX seconds"},
                          "taken": {"type": "integer", "description": "samples kept so far"}}}
_sample_listed: dict[str, Any] = {
    "type": "object",
    "required": ["id", "window_id", "name", "received_at", "method", "headers", "query",
                 "signature", "size"],
    "properties": {"id": {"type": "integer"}, "window_id": {"type": "integer"},
                   "name": {"type": "string"}, "received_at": {"type": "number"},
                   "method": {"type": "string"},
                   "headers": {"type": "object", "description": "lower-cased, credentials "
                                                               "redacted"},
                   "query": {"type": "object"},
                   "signature": {"enum": ["verified", "unchecked"]},
                   "size": {"type": "integer", "description": "the body's bytes"}}}
_sample = {**_sample_listed, "required": [*_sample_listed["required"], "body"],
           "properties": {**_sample_listed["properties"], "body": {
               "type": "string", "description": "as UTF-8 (bytes that are not: U+FFFD)"}}}
_sample_id = {"name": "sample_id", "in": "path", "required": True,
              "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ID}}
_window_name = {"name": "name", "in": "path", "required": True,
                "schema": {"type": "string", "maxLength": 200, "pattern": _NAME_PATTERN}}
_sample_replayed = {"type": "object", "required": ["ok", "message", "event_id"],
                    "properties": {"ok": {"type": "boolean"}, "message": {"type": "string"},
                                   "event_id": {"type": ["integer", "null"]}}}

OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "relay operator API", "version": "1",
             "description": "Events, deliveries, attempts and replay. Authenticate with "
                            "`Authorization: Bearer <RELAY_ADMIN_TOKEN>` (or the console's "
                            "session cookie, with its CSRF token as `X-CSRF-Token` on POSTs)."},
    "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    "security": [{"bearer": []}],
    "paths": {
        "/api/events": {"get": {
            "summary": "Recent events, newest first",
            "parameters": [
                {"name": "status", "in": "query", "schema": {
                    "enum": ["accepted", "skipped", "failed", "pending", "delivered", "dead"]}},
                {"name": "mapping", "in": "query", "schema": {"type": "string"}},
                {"name": "phone", "in": "query", "schema": {"type": "string"},
                 "description": "a phone in any format (+91 98220 12345, 09822012345 in a "
                                "mapping's region): events with a delivery to it; a few "
                                "digits: phones that hold them"},
                {"name": "q", "in": "query",
                 "schema": {"type": "string", "pattern": SEARCH_TEXT},
                 "description": "text in the raw body (an email, a name, a form token), "
                                "at least 3 characters, any case, every character literal"},
                {"name": "since", "in": "query", "schema": {"type": "string", "anyOf": [
                    {"pattern": SINCE_DURATION},
                    {"format": "date"}]},
                 "description": "received since: 24h, 7d, 30m or a date like 2026-11-01"},
                {"name": "limit", "in": "query",
                 "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}}],
            "responses": {"200": _json({"type": "object", "required": ["events"],
                                        "properties": {"events": {"type": "array",
                                                                  "items": _event_row}}}),
                          **_bad, **_errors}}},
        "/api/events/{event_id}": {"get": {
            "summary": "One event with its deliveries and every attempt",
            "parameters": [_event_id],
            "responses": {"200": _json(_event), **_errors}}},
        "/api/events/{event_id}/replay": {"post": {
            "summary": "Map the event again with the current mapping and queue what is not "
                       "delivered",
            "parameters": [_event_id],
            "responses": {"200": _json(_replayed),
                          "422": _json(_replayed, "Not replayed: the event still fails its "
                                                  "mapping, or its mapping is gone"),
                          **_csrf, **_errors}}},
        "/api/replay": {"post": {
            "summary": "Replay every event with a dead delivery and/or a failed mapping",
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "additionalProperties": False,
                "properties": {"dead": {"type": "boolean"}, "failed": {"type": "boolean"},
                               "mapping": {"type": "string",
                                           "description": "only this mapping's events"}},
                "anyOf": [{"required": ["dead"], "properties": {"dead": {"const": True}}},
                          {"required": ["failed"], "properties": {"failed": {"const": True}}}],
            }}}},
            "responses": {"200": _json({"type": "object", "required": ["events"],
                                        "properties": {"events": {"type": "array",
                                                                  "items": _replayed}}}),
                          **_bad, **_csrf, **_errors}}},
        "/api/failures": {"get": {
            "summary": "Failed mappings, dead deliveries and refused signatures, grouped by "
                       "reason",
            "responses": {"200": _json({"type": "object", "required": ["groups"], "properties": {
                "groups": {"type": "array", "items": {
                    "type": "object", "required": ["reason", "count", "event_ids"],
                    "properties": {"reason": {"type": "string"}, "count": {"type": "integer"},
                                   "event_ids": {"type": "array",
                                                 "items": {"type": "integer"}},
                                   "example": {"type": "string"}}}}}}),
                **_errors}}},
        "/api/preview": {"post": {
            "summary": "The Engati requests a body would trigger; nothing is sent. A body that "
                       "cannot be parsed is a failed preview saying why",
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "required": ["mapping"], "additionalProperties": False,
                "properties": {"mapping": {"type": "string"}, "body": {"type": "string"},
                               "headers": _strings, "query": _strings}}}}},
            "responses": {"200": _json({"type": "object",
                                        "required": ["status", "requests", "errors"],
                                        "properties": {
                                            "status": {"enum": ["planned", "failed", "skipped"]},
                                            "skipped": {"type": ["string", "null"]},
                                            "requests": {"type": "array"},
                                            "errors": {"type": "array"}}}),
                          **_bad, **_csrf, **_errors}}},
        "/api/capture/windows": {
            "get": {"summary": "The open capture windows",
                    "responses": {"200": _json({"type": "object", "required": ["windows"],
                                                "properties": {"windows": {
                                                    "type": "array", "items": _window}}}),
                                  **_errors}},
            "post": {"summary": "Open (or reopen, with a fresh cap) the capture window of "
                                "/hooks/NAME: its requests are kept as samples and never "
                                "delivered, whether or not a mapping NAME exists",
                     "requestBody": {"required": True, "content": {"application/json": {
                         "schema": {"type": "object", "required": ["name"],
                                    "additionalProperties": False, "properties": {
                                        "name": {"type": "string", "maxLength": 200,
                                                 "pattern": _NAME_PATTERN},
                                        "minutes": {"type": "number", "exclusiveMinimum": 0,
                                                    "maximum": 1440, "default": 15}}}}}},
                     "responses": {"201": _json({"type": "object", "required": ["window"],
                                                 "properties": {"window": _window}},
                                                "Opened"),
                                   **_bad, **_csrf, **_errors}}},
        "/api/capture/windows/{name}/close": {"post": {
            "summary": "Close the open capture window of /hooks/NAME (its samples stay)",
            "parameters": [_window_name],
            "responses": {"200": _json({"type": "object", "required": ["closed"],
                                        "properties": {"closed": {
                                            "type": "boolean",
                                            "description": "false: no window was open"}}}),
                          **_bad, **_csrf, **_errors}}},
        "/api/capture/samples": {"get": {
            "summary": "Captured samples, newest first, without their bodies",
            "parameters": [
                {"name": "name", "in": "query", "description": "only this name's samples "
                                                            "(empty: every name's)",
                 "schema": {"type": "string", "maxLength": 200,
                            "pattern": "^([A-Za-z0-9][A-Za-z0-9_.-]*)?$"}},
                {"name": "limit", "in": "query",
                 "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}}],
            "responses": {"200": _json({"type": "object", "required": ["samples"],
                                        "properties": {"samples": {
                                            "type": "array", "items": _sample_listed}}}),
                          **_bad, **_errors}}},
        "/api/capture/samples/{sample_id}": {"get": {
            "summary": "One sample with its body",
            "parameters": [_sample_id],
            "responses": {"200": _json(_sample), **_errors}}},
        "/api/capture/samples/{sample_id}/draft": {"get": {
            "summary": "A commented mapping drafted from the sample (relay draft): the sender "
                       "recognised, phone candidates best first, attributes proposed, a test "
                       "that reads the sample from `example`. Nothing is written",
            "parameters": [_sample_id,
                           {"name": "region", "in": "query", "schema": {
                               "type": "string", "default": "IN"},
                            "description": "the country of numbers written without a "
                                           "country code (empty: none)"}],
            "responses": {"200": _json({"type": "object",
                                        "required": ["name", "yaml", "example", "preset"],
                                        "properties": {"name": {"type": "string"},
                                                       "yaml": {"type": "string"},
                                                       "example": {"type": "string"},
                                                       "preset": {"type": "string"}}}),
                          "422": _json(_error, "No mapping can be drafted: the body cannot "
                                               "be read, or the region is unknown"),
                          **_errors}}},
        "/api/capture/samples/{sample_id}/replay": {"post": {
            "summary": "Accept the sample as an event of its mapping, as if it had just "
                       "arrived (once a mapping serves its name)",
            "parameters": [_sample_id],
            "responses": {"200": _json(_sample_replayed),
                          "422": _json(_sample_replayed, "Not replayed: no mapping serves "
                                                         "the name, or it cannot read the "
                                                         "sample"),
                          **_csrf, **_errors}}},
        "/api/playground": {"post": {
            "summary": "Try a mapping's text on a body: its problems by line, the Engati "
                       "requests it would trigger with the rule that chose each flow, and its "
                       "tests. Nothing is sent or saved; ${NAME} is not read from the "
                       "environment (but for the Engati settings a preview shows)",
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": _playground_in}}},
            "responses": {"200": _json(_tried), **_bad, **_csrf, **_too_large, **_errors,
                          **_busy}}},
        "/api/playground/save": {"post": {
            "summary": "Write a mapping's text to the mappings folder as NAME.yaml "
                       "(atomically; the registry loads it). Off unless RELAY_PLAYGROUND_WRITE",
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": _playground_in}}},
            "responses": {"200": _json({"type": "object",
                                        "required": ["saved", "mapping", "loaded"],
                                        "properties": {"saved": {"type": "string"},
                                                       "mapping": {"type": "string"},
                                                       "loaded": {"type": "boolean"},
                                                       "error": {"type": ["string", "null"]}}}),
                          **_bad, "403": _json(_error, "Saving is off (RELAY_PLAYGROUND_WRITE),"
                                                       " the text adds a ${NAME} outside "
                                                       "secret: or changes engati:, or a "
                                                       "console session without its CSRF "
                                                       "token"),
                          **_too_large, **_errors, **_busy}}},
    },
}
