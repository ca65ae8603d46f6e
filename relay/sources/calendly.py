"""Calendly: `Calendly-Webhook-Signature: t=<s>,v1=<hex>`, as Stripe's; 3 minutes of
tolerance. Calendly sends no event id: the event name and the payload URI identify one."""

from __future__ import annotations

from relay.sources.base import TimestampedPreset


class Calendly(TimestampedPreset):
    name = "calendly"
    secret_env = "CALENDLY_SIGNING_KEY"
    id = "concat(body.event, ' ', body.payload.uri)"
    header = "calendly-webhook-signature"
    tolerance = 180
