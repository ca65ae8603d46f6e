"""Razorpay: `x-razorpay-signature` is the hex HMAC-SHA256 of the raw body."""

from __future__ import annotations

from relay.sources.base import HmacPreset, HmacScheme


class Razorpay(HmacPreset):
    name = "razorpay"
    secret_env = "RAZORPAY_WEBHOOK_SECRET"
    body_digest = True
    id = "digest"  # x-razorpay-event-id is not signed
    scheme = HmacScheme("x-razorpay-signature", encoding="hex")
