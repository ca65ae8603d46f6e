"""Shopify: `x-shopify-hmac-sha256` is the base64 HMAC-SHA256 of the raw body."""

from __future__ import annotations

from relay.sources.base import HmacPreset, HmacScheme


class Shopify(HmacPreset):
    name = "shopify"
    secret_env = "SHOPIFY_WEBHOOK_SECRET"
    id = 'headers."x-shopify-webhook-id"'
    scheme = HmacScheme("x-shopify-hmac-sha256", encoding="base64")
