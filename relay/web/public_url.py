"""Where senders reach the relay: the one answer the intake (for senders that sign the URL,
such as HubSpot) and the console's Mappings page (the URL to paste into a sender) share."""

from __future__ import annotations

from typing import Any

from werkzeug.wsgi import get_host

from relay.config import Settings


def public_base(settings: Settings, environ: dict[str, Any]) -> tuple[str, bool]:
    """RELAY_PUBLIC_URL, else the scheme and host this request came to (a proxy's
    X-Forwarded-Proto and -Host with RELAY_TRUST_PROXY); and whether it is that guess."""
    if settings.public_url:
        return settings.public_url.rstrip("/"), False
    scheme, host = environ.get("wsgi.url_scheme", "http"), get_host(environ)
    if settings.trust_proxy:
        scheme = environ.get("HTTP_X_FORWARDED_PROTO", scheme).split(",")[0].strip()
        host = environ.get("HTTP_X_FORWARDED_HOST", host).split(",")[0].strip()
    return f"{scheme}://{host}", True
