"""A request kept as a sample while its capture window is open, and a sample replayed
through the mapping drafted from it.

A sample is never delivered, also when a mapping serves the name: a window on a live mapping
lets an integrator capture a real request safely (replay it once the mapping is right).
Its signature is checked as the intake checks it when a mapping with a secret serves the
name (`verified`; a forgery is refused 401 and kept as nothing), and recorded as
`unchecked` when no mapping or no secret can check it. Replaying a sample trusts it: it is
accepted as an event as if it had just arrived and been verified.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from relay.capture.detect import detect
from relay.errors import BodyError, field_errors
from relay.model import Received
from relay.sources import Endpoint, Inbound, Preset
from relay.sources.presets import PRESETS
from relay.sources.redact import redact
from relay.store import Store

VERIFIED, UNCHECKED = "verified", "unchecked"


def take_sample(store: Store, window: dict[str, Any], endpoint: Endpoint | None,
                inbound: Inbound, cap: int,
                now: float) -> tuple[int, dict[str, Any], Preset] | None:
    """Keep a request as a sample of `window` (at most `cap` of them): the HTTP status, the
    answer and the preset that answers it (the endpoint's, else the detected sender's, so
    that Salesforce gets its Ack either way). Raises SignatureError for a forgery.

    None when the window is full or has closed (another process closed it) and a mapping
    serves the name: the request is then the mapping's, to accept and deliver as usual,
    never a 2xx that keeps nothing."""
    signature = check(endpoint, inbound, now)
    preset = endpoint.preset if endpoint else PRESETS[detect(inbound.headers, inbound.raw)
                                                      .preset]
    credentials = endpoint.credentials if endpoint else frozenset()
    sample_id = store.add_sample(window["id"], {
        "method": inbound.method, "headers": redact(inbound.headers, credentials),
        "query": redact(inbound.query, credentials), "body": preset.stored_body(inbound.raw),
        "signature": signature}, cap, now)
    if sample_id is None and endpoint is not None:
        return None
    answer: dict[str, Any] = {"status": "captured", "signature": signature}
    if sample_id is None:  # no mapping: nothing could be delivered anyway
        answer.update(stored=False, note=f"this capture window is full ({cap} samples) or "
                      "has just closed: the request was not stored")
    else:
        answer["sample_id"] = sample_id
    return 202, answer, preset


def check(endpoint: Endpoint | None, inbound: Inbound, now: float) -> str:
    """`verified` when the endpoint's checks passed, `unchecked` when nothing can check."""
    if endpoint is None or endpoint.locked or not endpoint.preset.verifies(endpoint) or (
            endpoint.preset.unsigned(inbound)):  # WooCommerce's ping: let in, not verified
        return UNCHECKED
    endpoint.preset.verify(endpoint, inbound, now)  # SignatureError: 401, nothing stored
    if not endpoint.secrets:  # Salesforce: the OrganizationId of the parsed body is the check
        try:
            envelope = endpoint.preset.envelope(inbound.raw, inbound.headers, inbound.query)
        except BodyError:
            return UNCHECKED  # kept to be looked at; the mapping could not read it anyway
        endpoint.preset.admit(endpoint, envelope)
    return VERIFIED


@dataclass(frozen=True)
class Replayed:
    ok: bool
    message: str
    event_id: int | None = None


def replay_sample(store: Store, endpoint: Endpoint | None, sample: dict[str, Any],
                  now: float) -> Replayed:
    """Accept a sample as an event of its mapping, as if it had just arrived (trusted: it
    was verified or unchecked when it was captured)."""
    if endpoint is None:
        return Replayed(False, f"no mapping serves /hooks/{sample['name']}: draft one "
                        f"(relay draft {sample['name']} {sample['id']} --write) first")
    try:
        result = endpoint.evaluate_raw(sample["body"], sample["headers"], sample["query"])
    except BodyError as exc:
        return Replayed(False, f"the mapping cannot read the sample: {exc}")
    receipt = store.accept(Received(endpoint.name, sample["body"], sample["headers"],
                                    sample["query"], result, now))
    message = f"sample {sample['id']} replayed as event {receipt.event_id}: {receipt.status}"
    if receipt.status == "accepted":
        message += f", {receipt.deliveries} delivery(ies) queued"
    elif result.skipped:
        message += f" ({result.skipped})"
    if result.errors:
        return Replayed(False, message + "; " + field_errors(result.errors), receipt.event_id)
    return Replayed(True, message, receipt.event_id)
