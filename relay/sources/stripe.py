"""Stripe: `Stripe-Signature: t=<s>,v1=<hex>`, HMAC-SHA256 of "t.body" keyed with the whole
`whsec_...` string (not decoded); 5 minutes of tolerance, as stripe-python uses."""

from __future__ import annotations

from relay.sources.base import TimestampedPreset


class Stripe(TimestampedPreset):
    name = "stripe"
    secret_env = "STRIPE_WEBHOOK_SECRET"
    id = "body.id"
    header = "stripe-signature"
    tolerance = 300
