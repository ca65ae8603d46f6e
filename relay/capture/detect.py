"""Which sender a captured request came from: its headers first (each signed sender names
its signature header), then the shape of its body. Every preset of relay/sources/ is
recognised from a request shaped as its sender sends it; anything else is `generic`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from relay.errors import BodyError
from relay.sources.body import media_type, parse_json

# (preset, header, why): the first header present wins.
_HEADERS = (
    ("typeform", "typeform-signature", "the Typeform-Signature header"),
    ("stripe", "stripe-signature", "the Stripe-Signature header"),
    ("shopify", "x-shopify-hmac-sha256", "the X-Shopify-Hmac-Sha256 header"),
    ("razorpay", "x-razorpay-signature", "the X-Razorpay-Signature header"),
    ("hubspot", "x-hubspot-signature-v3", "the X-HubSpot-Signature-v3 header"),
    ("hubspot", "x-hubspot-signature", "the X-HubSpot-Signature header"),
    ("calendly", "calendly-webhook-signature", "the Calendly-Webhook-Signature header"),
    ("woocommerce", "x-wc-webhook-signature", "the X-WC-Webhook-Signature header"),
    ("tally", "tally-signature", "the Tally-Signature header"),
    ("cal-com", "x-cal-signature-256", "the X-Cal-Signature-256 header"),
    ("webflow", "x-webflow-signature", "the x-webflow-signature header"),
    ("github", "x-hub-signature-256", "the X-Hub-Signature-256 header"),
    ("github", "x-github-event", "the X-GitHub-Event header"),
    ("standard-webhooks", "webhook-signature", "the webhook-signature header (Standard "
     "Webhooks)"),
    ("standard-webhooks", "svix-signature", "the svix-signature header (Svix)"),
)
_PREFIXES = (("shopify", "x-shopify-", "X-Shopify-* headers"),
             ("razorpay", "x-razorpay-", "X-Razorpay-* headers"),
             ("hubspot", "x-hubspot-", "X-HubSpot-* headers"),
             ("woocommerce", "x-wc-webhook-", "X-WC-Webhook-* headers"))


@dataclass(frozen=True)
class Detected:
    preset: str  # a key of relay.sources.PRESETS
    why: str  # "the Stripe-Signature header", for the draft's comment


def detect(headers: dict[str, str], raw: bytes) -> Detected:
    """The sender of a request (headers lower-cased, the body as received)."""
    # Meta and GitHub sign alike (X-Hub-Signature-256): a Page's leadgen changes tell Meta.
    if "x-github-event" not in headers and _meta_leadgen(raw):
        return Detected("meta-lead-ads", "a Page webhook with leadgen changes (Meta Lead Ads)")
    for preset, header, why in _HEADERS:
        if header in headers:
            return Detected(preset, why)
    if "x-webhook-signature" in headers and "x-webhook-version" in headers:
        # Headers many senders use, but with Cashfree's x-webhook-version beside them
        return Detected("cashfree", "x-webhook-signature with x-webhook-version (Cashfree)")
    for preset, prefix, why in _PREFIXES:
        if any(name.startswith(prefix) for name in headers):
            return Detected(preset, why)
    content_type = media_type(headers.get("content-type"))
    if b"soap.sforce.com/2005/09/outbound" in raw[:4096] or (
            content_type in ("text/xml", "application/soap+xml")
            and b"notifications" in raw[:4096]):
        return Detected("salesforce", "a SOAP Outbound Message (Salesforce)")
    if re.fullmatch(rb"webhook_id=[0-9]{1,20}", raw):
        return Detected("woocommerce", "the ping WooCommerce sends when a webhook is saved")
    if content_type == "multipart/form-data" and b'name="rawRequest"' in raw:
        return Detected("jotform", "a multipart form with a rawRequest field (Jotform)")
    return _by_body(raw) or Detected("generic", "no header or body shape of a known sender")


def _meta_leadgen(raw: bytes) -> bool:
    if b'"leadgen"' not in raw[:65536]:
        return False
    try:
        body: Any = parse_json(raw)
    except BodyError:
        return False
    entries = body.get("entry") if isinstance(body, dict) and body.get("object") == "page" else None
    return isinstance(entries, list) and any(
        isinstance(entry, dict) and isinstance(entry.get("changes"), list) and any(
            isinstance(c, dict) and c.get("field") == "leadgen" for c in entry["changes"])
        for entry in entries)


def _by_body(raw: bytes) -> Detected | None:
    """Senders told apart by their JSON alone (the signature header may have been dropped
    by a proxy, or the sender is not signing yet)."""
    try:
        body: Any = parse_json(raw)
    except BodyError:
        return None
    if isinstance(body, list) and body and isinstance(body[0], dict) and (
            "subscriptionType" in body[0] and "portalId" in body[0]):
        return Detected("hubspot", "an array of events with portalId and subscriptionType")
    if not isinstance(body, dict):
        return None
    if "form_response" in body and "event_type" in body:
        return Detected("typeform", "a form_response body (Typeform)")
    if body.get("object") == "event" and str(body.get("id", "")).startswith("evt_"):
        return Detected("stripe", "an evt_ event object (Stripe)")
    if body.get("entity") == "event" and "payload" in body:
        return Detected("razorpay", "an entity: event body (Razorpay)")
    if str(body.get("event", "")).startswith("invitee.") and "payload" in body:
        return Detected("calendly", "an invitee event (Calendly)")
    if body.get("eventType") == "FORM_RESPONSE" and isinstance(body.get("data"), dict):
        return Detected("tally", "a FORM_RESPONSE body (Tally)")
    if str(body.get("type", "")).endswith("_WEBHOOK") and isinstance(body.get("data"), dict):
        return Detected("cashfree", "a type: ..._WEBHOOK body (Cashfree)")
    if str(body.get("order_key", "")).startswith("wc_order_"):
        return Detected("woocommerce", "an order with a wc_order_ key (WooCommerce)")
    if "triggerEvent" in body and isinstance(body.get("payload"), dict):
        return Detected("cal-com", "a triggerEvent body (Cal.com)")
    if "triggerType" in body and isinstance(body.get("payload"), dict):
        return Detected("webflow", "a triggerType body (Webflow)")
    if "google_key" in body and "lead_id" in body:
        return Detected("google-ads", "a lead with google_key and lead_id (Google Ads)")
    return None
