"""What an alert says, in each format: the relay.alert/1 JSON payload (the stored message),
Slack's `{"text"}` in mrkdwn, and an email. Only names, counts, kinds and the stored error
text go in, and that text is scrubbed first (`scrub`): never a phone number, an email
address, a token, a URL's path or a configured secret."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

from relay.alerts.rules import Condition

SCHEMA = "relay.alert/1"
ERROR_CHARS = 500  # of the last error kept in a message

_URL = re.compile(r"\b([a-z][a-z0-9+.-]*://)([^/\s?#@]*@)?([^/\s?#]+)[^\s]*", re.I)
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# Seven digits or more, maybe with separators: phone numbers (never HTTP statuses, codes
# or counts, which are shorter).
_NUMBER = re.compile(r"\+?\d(?:[\s().-]?\d){6,}")
_TOKEN = re.compile(r"\b(?=[A-Za-z0-9_+/=-]*\d)(?=[A-Za-z0-9_+/=-]*[A-Za-z])"
                    r"[A-Za-z0-9_+/=-]{20,}")


def scrub(text: str | None, secrets: Iterable[str] = ()) -> str | None:
    """`text` safe to send: the secrets given, URLs beyond their host, email addresses,
    phone-like numbers and token-like strings masked; at most ERROR_CHARS characters."""
    if text is None:
        return None
    for secret in sorted((s for s in secrets if s and len(s) >= 4), key=len, reverse=True):
        text = text.replace(secret, "[secret]")
    text = _URL.sub(lambda m: f"{m[1]}{m[3]}/…", text)
    text = _EMAIL.sub("[email]", text)
    text = _NUMBER.sub("[number]", text)
    text = _TOKEN.sub("[token]", text)
    return text if len(text) <= ERROR_CHARS else text[:ERROR_CHARS - 1] + "…"


def payload(cond: Condition, state: str, *, link: str, at: float, since: float | None,
            message_id: str, secrets: Iterable[str] = ()) -> dict[str, Any]:
    """The relay.alert/1 message (docs/operations.md, "Alerts", documents every field)."""
    return {
        "schema": SCHEMA,
        "id": message_id,
        "kind": cond.kind,
        "key": cond.key,
        "state": state,
        "title": cond.title,
        "text": cond.text,
        "mapping": cond.mapping,
        "mappings": list(cond.mappings) or ([cond.mapping] if cond.mapping else []),
        "failure": cond.failure,
        "count": cond.count,
        "last_error": scrub(cond.last_error, secrets),
        "link": link,
        "at": _iso(at),
        "since": None if since is None else _iso(since),
    }


_ICONS = {"firing": ":red_circle:", "resolved": ":large_green_circle:", "test": ":wrench:"}


def slack(message: dict[str, Any]) -> dict[str, Any]:
    """Slack's incoming-webhook body: one mrkdwn text."""
    lines = [f"{_ICONS.get(message['state'], '')} *{_esc(message['state'].upper())}* "
             f"{_esc(message['title'])}", _esc(message["text"])]
    if message.get("last_error"):
        lines.append(f"Last error: `{_esc(message['last_error']).replace('`', chr(39))}`")
    link = message["link"]
    lines.append(f"<{link}|Failures inbox>" if link.startswith(("http://", "https://"))
                 else f"Failures inbox: {_esc(link)} (set RELAY_PUBLIC_URL for a link)")
    return {"text": "\n".join(lines)}


def email(message: dict[str, Any], sender: str, to: Iterable[str]) -> EmailMessage:
    """A plain-text email of the message, with the JSON fields as lines too."""
    mail = EmailMessage()
    mail["Subject"] = f"[relay] {message['state'].upper()}: {message['title']}"
    mail["From"] = sender
    mail["To"] = ", ".join(to)
    mail["X-Relay-Alert"] = f"{message['key']} {message['state']}"
    fields = [(name, message.get(name)) for name in (
        "kind", "key", "state", "mapping", "failure", "count", "last_error", "at", "since",
        "id")]
    body = [message["text"], "", f"Failures inbox: {message['link']}", ""]
    body += [f"{name}: {value}" for name, value in fields if value not in (None, "")]
    mail.set_content("\n".join(body) + "\n")
    return mail


def _esc(text: str) -> str:
    """Slack's three control characters, escaped as Slack asks."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
