"""Raw request bodies to JSON-like values that expressions can read."""

from __future__ import annotations

import json
from pathlib import PurePath
from typing import Any
from urllib.parse import parse_qsl

from relay.errors import BodyError

_BY_SUFFIX = {
    ".json": "application/json",
    ".xml": "text/xml",
    ".form": "application/x-www-form-urlencoded",
}


def content_type_for(filename: str) -> str | None:
    """The content type an example body file stands for, by its suffix."""
    return _BY_SUFFIX.get(PurePath(filename).suffix.lower())


def media_type(content_type: str | None) -> str:
    """`application/json; charset=utf-8` -> `application/json`."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def parse_body(raw: bytes, content_type: str | None) -> Any:
    """Parse a JSON or form body; an empty body is null."""
    kind = media_type(content_type)
    if not raw.strip():
        return None
    if kind in ("", "text/plain") and raw.lstrip()[:1] in (b"{", b"["):
        kind = "application/json"  # senders that do not label their JSON
    if kind == "application/json" or kind.endswith("+json"):
        return parse_json(raw)
    if kind == "application/x-www-form-urlencoded":
        return parse_form(raw)
    raise BodyError(
        f"unsupported content type {kind or '(none)'!r}: send application/json or "
        "application/x-www-form-urlencoded, or use a source preset that reads this type",
        status=415,
    )


def parse_json(raw: bytes) -> Any:
    try:
        return json.loads(_text(raw))
    except json.JSONDecodeError as exc:
        raise BodyError(
            f"the body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:
        raise BodyError("the JSON body is nested too deeply") from None


def parse_form(raw: bytes) -> dict[str, Any]:
    """Form fields as an object of strings; a repeated field becomes a list of strings."""
    fields: dict[str, Any] = {}
    for key, value in parse_qsl(_text(raw), keep_blank_values=True):
        if key in fields:
            previous = fields[key]
            fields[key] = [*previous, value] if isinstance(previous, list) else [previous, value]
        else:
            fields[key] = value
    return fields


def _text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BodyError(f"the body is not valid UTF-8 (byte {exc.start})") from None
