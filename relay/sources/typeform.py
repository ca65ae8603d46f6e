"""Typeform: `typeform-signature` is the base64 HMAC-SHA256 of the raw body, after `sha256=`."""

from __future__ import annotations

from relay.sources.base import HmacPreset, HmacScheme


class Typeform(HmacPreset):
    name = "typeform"
    secret_env = "TYPEFORM_SECRET"
    id = 'body.event_id'
    scheme = HmacScheme("typeform-signature", encoding="base64", prefix="sha256=")
