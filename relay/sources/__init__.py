"""Source presets: what the relay knows about each sender.

A preset parses the sender's body, names where its event id is and how its batches split
(as defaults for a mapping's `id` and `each`), and says what the sender must be answered.
"""

from __future__ import annotations

from typing import Any

from relay.sources.body import parse_body


class Preset:
    """A sender that posts JSON or form bodies and signs nothing (`generic`)."""

    name = "generic"
    id: str | None = None  # default `id` expression
    each: str | None = None  # default `each` expression

    def parse(self, raw: bytes, content_type: str | None) -> Any:
        return parse_body(raw, content_type)

    def envelope(
        self, raw: bytes, headers: dict[str, str], query: dict[str, Any]
    ) -> dict[str, Any]:
        """The value expressions see: `{body, headers, query}`, header names lower-cased."""
        lowered = {k.lower(): v for k, v in headers.items()}
        return {
            "body": self.parse(raw, lowered.get("content-type")),
            "headers": lowered,
            "query": query,
        }


class Typeform(Preset):
    name = "typeform"
    id = "body.event_id"


PRESETS: dict[str, Preset] = {p.name: p for p in (Preset(), Typeform())}
