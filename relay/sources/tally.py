"""Tally: `tally-signature` is the base64 HMAC-SHA256 of the raw body."""

from __future__ import annotations

from relay.sources.base import HmacPreset, HmacScheme


class Tally(HmacPreset):
    name = "tally"
    secret_env = "TALLY_SIGNING_SECRET"
    id = 'body.eventId'
    scheme = HmacScheme("tally-signature", encoding="base64")
