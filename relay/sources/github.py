"""GitHub: `x-hub-signature-256` is the hex HMAC-SHA256 of the raw body, after `sha256=`."""

from __future__ import annotations

from relay.sources.base import HmacPreset, HmacScheme


class GitHub(HmacPreset):
    name = "github"
    secret_env = "GITHUB_WEBHOOK_SECRET"
    body_digest = True
    id = "digest"  # x-github-delivery is not signed
    scheme = HmacScheme("x-hub-signature-256", encoding="hex", prefix="sha256=")
