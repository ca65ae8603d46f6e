"""Shopify: `x-shopify-hmac-sha256` is the base64 HMAC-SHA256 of the raw body."""

from __future__ import annotations

from relay.sources.base import HmacPreset, HmacScheme


class Shopify(HmacPreset):
    name = "shopify"
    secret_env = "SHOPIFY_WEBHOOK_SECRET"
    body_digest = True
    id = "digest"  # x-shopify-webhook-id is not signed
    scheme = HmacScheme("x-shopify-hmac-sha256", encoding="base64")
