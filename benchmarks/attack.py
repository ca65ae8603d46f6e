"""A hostile sender against `relay serve`: forged, replayed and malformed webhooks over every
mapping, hostile paths and headers, and the admin surface; then what was stored, delivered,
counted and leaked.

    .venv/bin/python benchmarks/attack.py [--seed N] [--keep]

`relay serve` runs on a free 127.0.0.1 port with SQLite in a temporary folder, RELAY_MAPPINGS
pointing at a copy of mappings/ (plus five mappings this script adds to the copy: generic
HMAC with a signed timestamp, generic basic auth, generic token in a query parameter, HubSpot
with legacy_signatures, and an unverified generic endpoint), every secret the mappings name
set to a known random value, Engati answered by benchmarks/engati_standin.py (counting calls
per `user.phone_no`) and RELAY_ADMIN_TOKEN set to 40 characters. Every request goes over a
raw socket with a deadline; nothing leaves 127.0.0.1.

Each request is recorded with its group, case, mapping and answer (an HTTP status, `closed`
or `timeout`). Only requests this script marks genuine (signed with the right secret, fresh,
well-formed, in the content type the sender posts; or posted to the unverified endpoint) may
store an event; each stored event is traced back to the request that stored it (by the
event id in the answer, else by the request's tag in the body). Forged bodies carry the phone
number +919999999999, so that a forged delivery shows up in the deliveries table and in the
stand-in's counts. `--seed` changes the secrets, the phone numbers and the fuzzed mutations.

Exit status 1 on any 5xx, timeout where an answer was due, relay exit, stored row that should
not exist, forged or repeated Engati call, or leaked secret; the findings are printed.
"""

from __future__ import annotations

import argparse
import base64
import collections
import contextlib
import functools
import hashlib
import hmac
import json
import os
import random
import re
import shutil
import socket
import sqlite3
import struct
import subprocess
import sys
import tempfile
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import phonenumbers
import yaml
from harness import HERE, answers, free_port, start_standin, stats, stop, wait_until

from relay.sources import Endpoint, Inbound, load_endpoint
from relay.sources import hubspot as hubspot_source
from relay.sources import standard_webhooks as sw_source
from relay.sources.base import TimestampedPreset

ROOT = HERE.parent
FORGED_PHONE = "+919999999999"
FORGED_DIGITS = "919999999999"
WEB_WORKERS = 2  # relay serve's default --web-workers
UNVERIFIED_LIMIT = 20
DEEP = 10_000

REFUSED = frozenset({400, 401, 403, 404, 405, 411, 413, 414, 415, 429, 431, "closed"})
STORED = frozenset({200, 202, 422})

EXTRA_MAPPINGS = {
    "attack-generic-hmac": """\
description: attack.py - generic HMAC over "{timestamp}.{body}" with a timestamp header
source: generic
secret: ${ATTACK_HMAC_SECRET}
verify: {type: hmac, header: X-Signature, algorithm: sha256, encoding: hex, prefix: "sha256=",
         signed: "{timestamp}.{body}", timestamp_header: X-Timestamp, tolerance: 300}
id: body.id
phone: {path: body.phone, region: IN}
attributes: {name: body.name, extra: body.extra}
flows:
  - flow_key: A0A0A0A0A0A0A0A0A0A0A0A0A0A0A0A1
""",
    "attack-generic-basic": """\
description: attack.py - generic HTTP basic auth
source: generic
secret: ${ATTACK_BASIC_SECRET}
verify: {type: basic}
id: body.id
phone: {path: body.phone, region: IN}
attributes: {name: body.name, extra: body.extra}
flows:
  - flow_key: A0A0A0A0A0A0A0A0A0A0A0A0A0A0A0A2
""",
    "attack-generic-query": """\
description: attack.py - generic token in a query parameter with a harmless-looking name
source: generic
secret: ${ATTACK_QUERY_TOKEN}
verify: {type: token, query: k}
id: body.id
phone: {path: body.phone, region: IN}
attributes: {name: body.name, extra: body.extra}
flows:
  - flow_key: A0A0A0A0A0A0A0A0A0A0A0A0A0A0A0A3
""",
    "attack-hubspot-legacy": """\
description: attack.py - HubSpot with legacy v1/v2 signatures accepted
source: hubspot
secret: ${ATTACK_HUBSPOT_LEGACY_SECRET}
legacy_signatures: true
filter: item.subscriptionType == 'contact.propertyChange' && item.propertyName == 'phone'
phone: {path: item.propertyValue, region: US}
attributes: {hubspot_contact_id: item.objectId, change_source: item.changeSource}
flows:
  - flow_key: A0A0A0A0A0A0A0A0A0A0A0A0A0A0A0A4
""",
    "attack-unverified": """\
description: attack.py - an endpoint that verifies nothing (RELAY_UNVERIFIED_LIMIT applies)
source: generic
id: body.id
phone: {path: body.phone, region: IN}
attributes: {name: body.name, extra: body.extra}
flows:
  - flow_key: A0A0A0A0A0A0A0A0A0A0A0A0A0A0A0A5
""",
}


# --- SHA-256 length extension (HubSpot v1 is sha256(secret + body)) ---------------------------

_K = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2]


@functools.cache
def _verify_options(file: str) -> dict[str, Any]:
    options = yaml.safe_load(Path(file).read_text(encoding="utf-8")).get("verify")
    return options if isinstance(options, dict) else {}


def verify_options(endpoint: Endpoint) -> dict[str, Any]:
    """A generic mapping's `verify:` options as its file writes them ({} for other kinds):
    the attacker reads the file the integrator wrote, not the relay's compiled form."""
    return _verify_options(endpoint.file)


def _rotr(x: int, n: int) -> int:
    return ((x >> n) | (x << (32 - n))) & 0xFFFFFFFF


def _compress(state: list[int], block: bytes) -> list[int]:
    w = list(struct.unpack(">16I", block))
    for i in range(16, 64):
        s0 = _rotr(w[i - 15], 7) ^ _rotr(w[i - 15], 18) ^ (w[i - 15] >> 3)
        s1 = _rotr(w[i - 2], 17) ^ _rotr(w[i - 2], 19) ^ (w[i - 2] >> 10)
        w.append((w[i - 16] + s0 + w[i - 7] + s1) & 0xFFFFFFFF)
    a, b, c, d, e, f, g, h = state
    for i in range(64):
        t1 = (h + (_rotr(e, 6) ^ _rotr(e, 11) ^ _rotr(e, 25)) + ((e & f) ^ (~e & g)) + _K[i]
              + w[i]) & 0xFFFFFFFF
        t2 = ((_rotr(a, 2) ^ _rotr(a, 13) ^ _rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c))
              ) & 0xFFFFFFFF
        a, b, c, d, e, f, g, h = (t1 + t2) & 0xFFFFFFFF, a, b, c, (d + t1) & 0xFFFFFFFF, e, f, g
    return [(x + y) & 0xFFFFFFFF for x, y in zip(state, [a, b, c, d, e, f, g, h], strict=True)]


def _padding(length: int) -> bytes:
    return b"\x80" + b"\x00" * ((55 - length) % 64) + struct.pack(">Q", length * 8)


def length_extend(digest_hex: str, known_length: int, append: bytes) -> tuple[bytes, str]:
    """(the glue padding, sha256(m + glue + append)) from sha256(m) and len(m) alone."""
    glue = _padding(known_length)
    state = list(struct.unpack(">8I", bytes.fromhex(digest_hex)))
    data = append + _padding(known_length + len(glue) + len(append))
    for i in range(0, len(data), 64):
        state = _compress(state, data[i:i + 64])
    return glue, struct.pack(">8I", *state).hex()


# --- the wire ---------------------------------------------------------------------------------


def _b(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode("utf-8")


@dataclass
class Answer:
    status: int | str
    headers: dict[str, list[str]]
    body: bytes
    raw: bytes
    seconds: float

    def header(self, name: str) -> str | None:
        values = self.headers.get(name.lower())
        return values[-1] if values else None

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None


def _parse(raw: bytes) -> tuple[int | None, dict[str, list[str]], bytes, bool]:
    """(status, headers, body, complete) of an HTTP answer read so far; interim 1xx skipped."""
    while True:
        head, sep, rest = raw.partition(b"\r\n\r\n")
        if not sep:
            return None, {}, b"", False
        lines = head.split(b"\r\n")
        try:
            status = int(lines[0].split()[1])
        except (IndexError, ValueError):
            return None, {}, b"", False
        if 100 <= status < 200:
            raw = rest
            continue
        headers: dict[str, list[str]] = {}
        for line in lines[1:]:
            name, _, value = line.decode("latin-1").partition(":")
            headers.setdefault(name.strip().lower(), []).append(value.strip())
        length = headers.get("content-length")
        if length and length[-1].isdigit():
            return status, headers, rest[:int(length[-1])], len(rest) >= int(length[-1])
        if "chunked" in ",".join(headers.get("transfer-encoding", [])).lower():
            body, complete = _dechunk(rest)
            return status, headers, body, complete
        return status, headers, rest, False


def _dechunk(data: bytes) -> tuple[bytes, bool]:
    out = b""
    while True:
        line, sep, data = data.partition(b"\r\n")
        if not sep:
            return out, False
        try:
            size = int(line.split(b";")[0], 16)
        except ValueError:
            return out, False
        if size == 0:
            return out, True
        out += data[:size]
        data = data[size + 2:]


def exchange(port: int, data: bytes, timeout: float, *, half_close: bool = False,
             pieces: list[tuple[bytes, float]] | None = None, head_only: bool = False) -> Answer:
    """Send `data` (or `pieces`, each after its delay) and read the answer, within `timeout`."""
    started = time.monotonic()
    deadline = started + timeout
    raw = b""
    timed_out = False
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    except OSError:
        return Answer("closed", {}, b"", b"", time.monotonic() - started)
    try:
        try:
            for chunk, delay in pieces or [(data, 0.0)]:
                if delay:
                    time.sleep(delay)
                sock.sendall(chunk)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server answered (413) or gave up before it had everything: read on
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                timed_out = True
                break
            sock.settimeout(left)
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                timed_out = True
                break
            except OSError:
                break
            if not chunk:
                break
            raw += chunk
            status, _, _, complete = _parse(raw)
            if status is not None and (complete or head_only):
                break
    finally:
        sock.close()
    status, headers, body, _ = _parse(raw)
    if status is None:
        status = "timeout" if timed_out else "closed"
    return Answer(status, headers, body, raw, time.monotonic() - started)


def http(port: int, method: str, target: str | bytes, headers: list[tuple[Any, Any]] = (),
         body: bytes = b"", *, host: str | bool | None = None, length: bool = True,
         close: bool = True, version: bytes = b"HTTP/1.1") -> bytes:
    lines = [_b(method) + b" " + _b(target) + b" " + version]
    if host is not False:
        lines.append(b"Host: " + _b(host or f"127.0.0.1:{port}"))
    lines += [_b(k) + b": " + _b(v) for k, v in headers]
    if length:
        lines.append(b"Content-Length: %d" % len(body))
    if close:
        lines.append(b"Connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


# --- the run ----------------------------------------------------------------------------------


@dataclass
class Record:
    n: int
    group: str
    case: str
    mapping: str
    status: int | str
    may_store: bool | str  # True, False, or "either" (storing would be harmless)
    expect: frozenset | None
    answer: Any
    tag: str | None
    seconds: float
    may_hang: bool = False
    allow_header: str | None = None
    notes: list[str] = field(default_factory=list)
    at: float = field(default_factory=time.time)


class Hung(Exception):
    """The relay stopped answering: the rest of the attacks would only time out."""


class Attack:
    def __init__(self, seed: int, folder: Path, port: int, standin_port: int):
        self.rng = random.Random(seed)
        self.seed = seed
        self.folder = folder
        self.port = port
        self.standin_port = standin_port
        self.records: list[Record] = []
        self.findings: list[str] = []
        self.observations: list[str] = []
        self.leaks: list[str] = []
        self.used_phones: set[str] = set()
        self.salt = f"{seed:x}{self.rng.randrange(16**6):06x}"
        self._tag = 0
        self._timeouts = 0
        self._last_msg_ms = 0
        self.secrets: dict[str, str] = {}
        self.maps: dict[str, Any] = {}
        self.repo_names: list[str] = []
        self.hostile_events: list[tuple[str, int]] = []  # (case, event id) to view in the console
        self.genuine_by_phone: dict[str, int] = collections.Counter()
        self.replay_phones: dict[str, str] = {}  # phone -> case: must be called at most once

    # --- setup --------------------------------------------------------------------------

    def secret_for(self, var: str, preset: str) -> str:
        if preset == "standard-webhooks":
            return "whsec_" + base64.b64encode(self.rng.randbytes(32)).decode()
        if var == "ATTACK_BASIC_SECRET" or preset == "basic":
            return f"atkuser{self.rng.randrange(10**6)}:atkpass-{self.rng.randbytes(12).hex()}"
        if var == "STRIPE_WEBHOOK_SECRET":
            return "whsec_atk" + self.rng.randbytes(16).hex()
        return f"atk-{var.lower().replace('_', '-')}-{self.rng.randbytes(12).hex()}"

    def phone(self) -> str:
        while True:
            number = f"+9198{self.rng.randrange(10**8):08d}"
            if number in self.used_phones or number == FORGED_PHONE:
                continue
            if phonenumbers.is_valid_number(phonenumbers.parse(number, None)):
                self.used_phones.add(number)
                return number

    def tag(self) -> str:
        self._tag += 1
        return f"atk{self.salt}n{self._tag:05d}"

    def url(self, target: str) -> str:
        return f"http://127.0.0.1:{self.port}{target}"

    # --- bodies -------------------------------------------------------------------------

    def body(self, name: str, phone: str, uid: str, extra: Any = None,
             person: str = "Asha") -> tuple[bytes, str, list[tuple[str, str]]]:
        """A webhook as `name`'s sender would post it: (raw, content type, headers)."""
        digits = int(hashlib.sha256(uid.encode()).hexdigest()[:12], 16)
        preset = self.maps[name].preset.name
        headers: list[tuple[str, str]] = []
        if preset == "typeform":
            obj: Any = {
                "event_id": uid, "event_type": "form_response",
                "form_response": {"form_id": "lT4Z3j", "token": uid,
                                  "hidden": {"utm_source": "attack", "campaign": extra or uid},
                                  "answers": [
                                      {"type": "text", "text": person, "field": {"ref": "name"}},
                                      {"type": "phone_number", "phone_number": phone,
                                       "field": {"ref": "phone"}},
                                      {"type": "email", "email": "asha@example.com",
                                       "field": {"ref": "email"}},
                                      {"type": "choice", "choice": {"label": "VIP"},
                                       "field": {"ref": "category"}}]}}
        elif preset == "stripe":
            obj = {"id": f"evt_{uid}", "object": "event", "type": "checkout.session.completed",
                   "data": {"object": {"payment_status": "paid", "amount_total": 249900,
                                       "currency": "inr", "metadata": {"plan": extra or "annual"},
                                       "customer_details": {"phone": phone, "name": person,
                                                            "email": "neha@example.com"}}}}
        elif preset == "salesforce":
            return self.sf_xml([(f"04l{uid}", phone)]), "text/xml; charset=utf-8", []
        elif preset == "shopify":
            obj = {"id": digits, "name": f"#{uid}", "currency": "INR", "total_price": "1899.00",
                   "customer": {"first_name": person, "phone": None},
                   "shipping_address": {"phone": phone, "first_name": person},
                   "line_items": [{"title": "kurta", "quantity": 1}], "note": extra}
            headers = [("X-Shopify-Topic", "orders/create"), ("X-Shopify-Webhook-Id", uid)]
        elif preset == "razorpay":
            obj = {"event": "payment.captured", "payload": {"payment": {"entity": {
                "id": f"pay_{uid}", "contact": phone, "email": "arjun@example.com",
                "amount": 50000, "notes": {"course": extra or "python-101"}}}}}
            headers = [("X-Razorpay-Event-Id", uid)]
        elif preset == "hubspot":
            obj = [{"eventId": digits, "subscriptionId": 2571833, "portalId": 62515,
                    "subscriptionType": "contact.propertyChange", "propertyName": "phone",
                    "propertyValue": phone, "objectId": digits % 10**7,
                    "changeSource": extra or uid}]
        elif preset == "standard-webhooks":
            obj = {"type": "user.created", "data": {
                "id": f"user_{uid}", "first_name": extra or person,
                "phone_numbers": [{"phone_number": phone, "verification": {"status": "verified"}}],
                "email_addresses": [{"email_address": "zoya@example.com"}]}}
        elif preset == "tally":
            obj = {"eventId": uid, "eventType": "FORM_RESPONSE", "data": {"fields": [
                {"label": "Your name", "type": "INPUT_TEXT", "value": extra or person},
                {"label": "WhatsApp number", "type": "INPUT_PHONE_NUMBER", "value": phone},
                {"label": "Which workshop?", "type": "MULTIPLE_CHOICE", "value": ["b8d1"],
                 "options": [{"id": "b8d1", "text": "Advanced"}]}]}}
        elif preset == "calendly":
            obj = {"event": "invitee.created", "payload": {
                "uri": f"https://api.calendly.com/scheduled_events/ATK/invitees/{uid}",
                "name": extra or person, "text_reminder_number": phone,
                "scheduled_event": {"name": "demo", "start_time": "2026-11-28T17:00:00Z"}}}
        elif preset == "github":
            obj = {"action": "opened", "issue": {"number": digits % 10**5, "title": extra or uid,
                                                 "html_url": "https://github.com/a/b/issues/1",
                                                 "body": f"Contact\nPhone: {phone}\n"}}
            headers = [("X-GitHub-Event", "issues"), ("X-GitHub-Delivery", uid)]
        elif preset == "jotform":
            boundary = f"----atk{uid}"
            fields = {"formID": "243180965214353", "submissionID": str(digits),
                      "formTitle": "Clinic appointment",
                      "rawRequest": json.dumps({"q3_fullName": {"first": person, "last": uid},
                                                "q4_phoneNumber": {"full": phone},
                                                "q5_preferredDay": extra or "Saturday"})}
            raw = b"".join(
                b"--%s\r\nContent-Disposition: form-data; name=\"%s\"\r\n\r\n%s\r\n"
                % (boundary.encode(), k.encode(), _b(v)) for k, v in fields.items())
            raw += b"--%s--\r\n" % boundary.encode()
            return raw, f"multipart/form-data; boundary={boundary}", []
        elif preset == "meta-lead-ads":
            # The lead's id ends in the phone's digits: `relay sandbox`, the Graph API
            # stand-in here, answers a lead whose phone ends in them.
            obj = {"object": "page", "entry": [{"id": "516540199134611", "time": 1764583200,
                   "changes": [{"field": "leadgen", "value": {
                       "leadgen_id": "7" + phone[-8:],
                       "form_id": "551111744595541", "ad_id": uid, "page_id": "5165",
                       "created_time": 1764583199, "note": extra}}]}]}
        elif preset == "woocommerce":
            obj = {"id": digits, "number": str(digits), "status": "processing", "currency": "INR",
                   "total": "1379.00", "order_key": f"wc_order_{uid}",
                   "billing": {"first_name": extra or person, "phone": phone},
                   "shipping": {"phone": ""}, "payment_method_title": "Cash on delivery",
                   "line_items": [{"name": "kurta", "quantity": 1}]}
            headers = [("X-WC-Webhook-Topic", "order.updated"), ("X-WC-Webhook-ID", "3"),
                       ("X-WC-Webhook-Delivery-ID", uid)]
        elif preset == "cashfree":
            obj = {"type": "PAYMENT_SUCCESS_WEBHOOK", "event_time": "2026-11-25T12:20:31+05:30",
                   "data": {"order": {"order_id": f"order_{uid}", "order_tags": {
                       "course": extra or "python-101"}},
                       "payment": {"cf_payment_id": str(digits), "payment_status": "SUCCESS",
                                   "payment_amount": 499.0, "payment_currency": "INR"},
                       "customer_details": {"customer_name": person, "customer_phone": phone}}}
            headers = [("x-webhook-version", "2025-01-01")]
        elif name == "crm-leads":
            obj = {"event": "lead.created", "lead": {
                "id": uid, "first_name": person, "last_name": "S", "mobile": phone,
                "email": "priya@example.com", "score": 10, "whatsapp_opt_in": True,
                "tags": extra if extra is not None else ["webinar"], "owner": {"name": "Dev"}}}
        else:  # this script's generic mappings, and the generic recipes of mappings/: each
            # finds its id and phone where its sender puts them
            obj = {"id": uid, "phone": phone, "name": person, "extra": extra,
                   "response_id": uid, "ProspectID": uid, "lead_id": uid, "Mobile": phone,
                   "mobile": phone, "whatsapp_opt_in": "true",
                   "answers": {"WhatsApp number": phone, "Name": person},
                   "meta": {"id": uid, "entity": "person", "action": "create"},
                   "data": {"name": person, "phones": [{"value": phone, "primary": True}]}}
        return json.dumps(obj).encode(), "application/json", headers

    def sf_xml(self, notifications: list[tuple[str, str]], org: str | None = None,
               org_xml: str | None = None, doctype: str = "", inner: str = "") -> bytes:
        org = org if org is not None else self.sf_org()
        org_element = org_xml if org_xml is not None else f"<OrganizationId>{org}</OrganizationId>"
        items = "".join(
            f"<Notification><Id>{nid}</Id><sObject xsi:type=\"sf:Lead\" "
            f"xmlns:sf=\"urn:sobject.enterprise.soap.sforce.com\"><sf:Id>{nid}</sf:Id>"
            f"<sf:FirstName>Anita</sf:FirstName><sf:LastName>{nid}</sf:LastName>"
            f"<sf:Company>Sunrise</sf:Company><sf:LeadSource>Web</sf:LeadSource>"
            f"<sf:MobilePhone>{phone}</sf:MobilePhone></sObject></Notification>"
            for nid, phone in notifications)
        return (f'<?xml version="1.0" encoding="UTF-8"?>{doctype}'
                '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
                'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body>'
                '<notifications xmlns="http://soap.sforce.com/2005/09/outbound">'
                f'{org_element}<ActionId>04k5g000000CaBcAAK</ActionId>{inner}{items}'
                '</notifications></soapenv:Body></soapenv:Envelope>').encode()

    def sf_org(self) -> str:
        sf = [m for m in self.maps.values() if m.preset.name == "salesforce"]
        return sf[0].organizations[0] if sf and sf[0].organizations else "00D5g000004XyZ1EAC"

    # --- signing --------------------------------------------------------------------------

    def sign(self, name: str, raw: bytes, target: str, now: float | None = None,
             method: str = "POST", secret: str | None = None) -> tuple[list[tuple[str, str]], str]:
        """The headers a sender adds, and the target with any query it adds, via the preset."""
        mapping = self.maps[name]
        if not mapping.secrets and secret is None:
            return [], target
        now = time.time() if now is None else now
        if mapping.preset.name == "standard-webhooks":  # its message id is the time in ms
            ms = int(now * 1000)
            if ms <= self._last_msg_ms:
                now = (self._last_msg_ms + 1) / 1000
                ms = self._last_msg_ms + 1
            self._last_msg_ms = ms
        headers, query = mapping.preset.sign(secret or mapping.secrets[0], mapping,
                                             Inbound(raw, {}, {}, method, self.url(target)), now)
        if query:
            target += ("&" if "?" in target else "?") + urllib.parse.urlencode(query)
        return list(headers.items()), target

    # --- sending --------------------------------------------------------------------------

    def send(self, group: str, case: str, mapping: str, data: bytes, *,
             may_store: bool | str = False, expect: frozenset | set | None = None,
             timeout: float = 5.0, tag: str | None = None, may_hang: bool = False,
             half_close: bool = False, pieces: list[tuple[bytes, float]] | None = None,
             head_only: bool = False) -> Answer:
        answer = exchange(self.port, data, timeout, half_close=half_close, pieces=pieces,
                          head_only=head_only)
        record = Record(len(self.records) + 1, group, case, mapping, answer.status, may_store,
                        frozenset(expect) if expect is not None else None, answer.json(), tag,
                        answer.seconds, may_hang, answer.header("allow"))
        self.records.append(record)
        if answer.status == "timeout" and not may_hang:
            self._timeouts += 1
            if self._timeouts >= 5:
                raise Hung(f"5 requests in a row got no answer (the last: {group}/{case})")
        elif answer.status != "timeout":
            self._timeouts = 0
        for label, value in self.secret_values():
            if value in answer.raw:
                self.leaks.append(f"response to #{record.n} {group}/{case} ({mapping}) "
                                  f"contains {label}")
        return answer

    def post(self, group: str, case: str, name: str, raw: bytes, ctype: str | None,
             headers: list[tuple[str, str]] = (), *, signed: bool = True,
             target: str | None = None, now: float | None = None, may_store: bool | str = False,
             expect: frozenset | set | None = None, tag: str | None = None,
             sign_headers: list[tuple[str, str]] | None = None, **kwargs: Any) -> Answer:
        target = target or f"/hooks/{name}"
        extra: list[tuple[str, str]] = []
        if sign_headers is not None:
            extra = sign_headers
        elif signed:
            extra, target = self.sign(name, raw, target, now)
        all_headers = ([("Content-Type", ctype)] if ctype else []) + list(headers) + extra
        if expect is None:
            expect = STORED if may_store is True else REFUSED
        return self.send(group, case, name, http(self.port, "POST", target, all_headers, raw),
                         may_store=may_store, expect=expect, tag=tag, **kwargs)

    def secret_values(self) -> list[tuple[str, bytes]]:
        if not hasattr(self, "_secret_values"):
            values = []
            for var, value in self.secrets.items():
                values.append((var, value.encode()))
                if ":" in value:  # basic auth travels base64-encoded
                    values.append((f"{var} (base64)", base64.b64encode(value.encode())))
            self._secret_values = values
        return self._secret_values

    def genuine(self, group: str, case: str, name: str, *, extra: Any = None,
                person: str = "Asha", now: float | None = None,
                headers: list[tuple[str, str]] = (), remember_event: bool = False) -> Answer:
        phone = self.phone()
        tag = self.tag()
        raw, ctype, base_headers = self.body(name, phone, tag, extra, person)
        answer = self.post(group, case, name, raw, ctype, base_headers + list(headers), now=now,
                           may_store=True, tag=tag)
        self.genuine_by_phone[phone.lstrip("+")] += 1
        body = answer.json()
        if remember_event and isinstance(body, dict) and body.get("event_id"):
            self.hostile_events.append((case, body["event_id"]))
        return answer

    # --- the attacks ----------------------------------------------------------------------

    def signed_names(self) -> list[str]:
        return [n for n, m in self.maps.items() if m.preset.verifies(m) and m.secrets]

    def body_signed_names(self) -> list[str]:
        """Mappings whose signature covers the body (token and org checks do not, nor
        Google Ads' key, which travels in the body)."""
        return [n for n in self.signed_names()
                if self.maps[n].preset.name not in ("jotform", "salesforce", "google-ads")
                and not (self.maps[n].preset.name == "generic"
                         and verify_options(self.maps[n]).get("type") != "hmac")]

    def run_genuine(self) -> None:
        for name in self.maps:
            for i in range(2):
                self.genuine("genuine", f"fresh-{i + 1}", name)
        # A chunked, genuinely signed webhook (no Content-Length) is a webhook too.
        phone, tag = self.phone(), self.tag()
        raw, ctype, _headers = self.body("typeform-leads", phone, tag)
        sig, target = self.sign("typeform-leads", raw, "/hooks/typeform-leads")
        chunked = b"".join(b"%x\r\n%s\r\n" % (len(raw[i:i + 100]), raw[i:i + 100])
                           for i in range(0, len(raw), 100)) + b"0\r\n\r\n"
        self.send("genuine", "chunked-signed", "typeform-leads", http(
            self.port, "POST", target, [("Content-Type", ctype), *sig,
                                        ("Transfer-Encoding", "chunked")], chunked, length=False),
            may_store=True, expect=STORED, tag=tag)
        self.genuine_by_phone[phone.lstrip("+")] += 1
        # Salesforce: 100 Notifications is the most it sends: accepted.
        if "salesforce-leads" in self.maps:
            tag = self.tag()
            notes = [(f"04l{tag}i{i:03d}", self.phone()) for i in range(100)]
            for _, p in notes:
                self.genuine_by_phone[p.lstrip("+")] += 1
            self.post("genuine", "salesforce-100-notifications", "salesforce-leads",
                      self.sf_xml(notes), "text/xml", may_store=True, tag=tag)

    def run_replays(self) -> None:
        group = "replay"
        # A mapping without an id (Zoho Forms sends none) cannot tell a replay from a new
        # webhook: docs/sources.md says so; its token is what keeps others out.
        for name in [n for n in self.signed_names() if self.maps[n].mapping.id is not None]:
            mapping = self.maps[name]
            # An exact replay of a genuine request: a duplicate, never a second event.
            phone, tag = self.phone(), self.tag()
            self.replay_phones[phone.lstrip("+")] = f"{name}: replays of one request"
            raw, ctype, headers = self.body(name, phone, tag)
            sig, target = self.sign(name, raw, f"/hooks/{name}")
            request = http(self.port, "POST", target,
                           [("Content-Type", ctype), *headers, *sig], raw)
            self.send(group, "original", name, request, may_store=True, expect=STORED, tag=tag)
            self.genuine_by_phone[phone.lstrip("+")] += 1
            for _i in range(2):
                self.send(group, "exact-replay", name, request, expect=STORED | REFUSED, tag=tag)
            # The same bytes with unsigned headers changed: the dedup id some presets read
            # from a header the signature does not cover.
            id_header = {"shopify": "X-Shopify-Webhook-Id", "razorpay": "X-Razorpay-Event-Id",
                         "github": "X-GitHub-Delivery",
                         "woocommerce": "X-WC-Webhook-Delivery-ID"}.get(mapping.preset.name)
            if id_header:
                changed = [(k, f"{v}-replayed") if k == id_header else (k, v)
                           for k, v in headers]
                self.send(group, "replay-new-id-header", name, http(
                    self.port, "POST", target, [("Content-Type", ctype), *changed, *sig], raw),
                    expect=STORED | REFUSED, tag=tag)
                dropped = [(k, v) for k, v in headers if k != id_header]
                self.send(group, "replay-without-id-header", name, http(
                    self.port, "POST", target, [("Content-Type", ctype), *dropped, *sig], raw),
                    expect=STORED | REFUSED, tag=tag)
        self.run_svix_replay()
        self.run_stale()
        self.run_hubspot_url()

    def run_svix_replay(self) -> None:
        """Standard Webhooks sent with svix-* headers, replayed with a webhook-id of the
        attacker's choosing (read first for the dedup id, never signed in that case)."""
        for name in [n for n in self.signed_names()
                     if self.maps[n].preset.name == "standard-webhooks"]:
            phone, tag = self.phone(), self.tag()
            self.replay_phones[phone.lstrip("+")] = f"{name}: svix replays"
            raw, ctype, _headers = self.body(name, phone, tag)
            sig, target = self.sign(name, raw, f"/hooks/{name}")
            svix = [(k.replace("webhook-", "svix-"), v) for k, v in sig]
            base = [("Content-Type", ctype), *svix]
            self.send("replay", "svix-original", name, http(self.port, "POST", target, base, raw),
                      may_store=True, expect=STORED, tag=tag)
            self.genuine_by_phone[phone.lstrip("+")] += 1
            self.send("replay", "svix-exact-replay", name,
                      http(self.port, "POST", target, base, raw), expect=STORED | REFUSED, tag=tag)
            for i in range(3):
                self.send("replay", "svix-replay-plus-unsigned-webhook-id", name, http(
                    self.port, "POST", target, [*base, ("webhook-id", f"msg_attacker{i}")], raw),
                    expect=STORED | REFUSED, tag=tag)

    def timestamp_variants(self, now: float) -> list[tuple[str, str]]:
        return [("stale-10min", str(int(now - 600))), ("stale-1h", str(int(now - 3600))),
                ("stale-1y", str(int(now - 365 * 86400))), ("future-10min", str(int(now + 600))),
                ("nan", "nan"), ("NaN", "NaN"), ("inf", "inf"), ("-inf", "-inf"),
                ("infinity", "Infinity"), ("1e400", "1e400"), ("huge", "9" * 400),
                ("negative", "-1"), ("zero", "0"), ("empty", ""), ("space", " "),
                ("hex", "0x10"), ("float-junk", "1.7e9x"), ("-nan", "-nan")]

    def run_stale(self) -> None:
        """Genuine signatures (the right secret) over bad timestamps: all must be refused."""
        group = "timestamp"
        now = time.time()
        for name in self.signed_names():
            mapping = self.maps[name]
            preset = mapping.preset
            kind = ("timestamped" if isinstance(preset, TimestampedPreset) else preset.name)
            if preset.name == "generic" and verify_options(mapping).get("timestamp_header"):
                kind = "generic-ts"
            scheme = getattr(preset, "scheme", None)
            if preset.name != "generic" and scheme is not None and scheme.tolerance is not None:
                kind = "scheme"  # an HmacScheme with a timestamp (Cashfree: milliseconds)
            if kind not in ("timestamped", "hubspot", "standard-webhooks", "generic-ts",
                            "scheme"):
                continue
            secret = mapping.secrets[0]
            target = f"/hooks/{name}"
            url = self.url(target)
            tolerance = getattr(preset, "tolerance", None) or verify_options(mapping).get(
                "tolerance") or (scheme.tolerance if kind == "scheme" else None) or 300
            variants = self.timestamp_variants(now)
            # A signature with the timestamp a little inside and outside the window.
            variants += [("inside-window", str(int(now - tolerance + 30))),
                         ("just-outside-window", str(int(now - tolerance - 30)))]
            for label, stamp in variants:
                inside = label == "inside-window"
                phone = self.phone() if inside else FORGED_PHONE
                tag = self.tag()
                raw, ctype, headers = self.body(name, phone, tag)
                if kind == "timestamped":
                    signature = TimestampedPreset._signature(secret, stamp, raw)
                    sig = [(preset.header, f"t={stamp},v1={signature}")]
                elif kind == "hubspot":
                    ms = stamp
                    if stamp.lstrip("-").isdigit() and label not in ("huge",):
                        ms = str(int(stamp) * 1000)
                    inbound = Inbound(raw, {}, {}, "POST", url)
                    sig = [("X-HubSpot-Request-Timestamp", ms),
                           ("X-HubSpot-Signature-v3", hubspot_source.v3(secret, inbound, ms))]
                elif kind == "scheme":
                    scaled = stamp
                    if stamp.lstrip("-").isdigit() and label not in ("huge",):
                        scaled = str(round(int(stamp) / scheme.timestamp_unit))
                    signature = scheme.signature(secret, Inbound(raw, {}, {}, "POST", url), scaled)
                    sig = [(scheme.header, signature), (scheme.timestamp_header, scaled)]
                elif kind == "standard-webhooks":
                    msg_id = f"msg_{tag}"
                    sig = [("webhook-id", msg_id), ("webhook-timestamp", stamp),
                           ("webhook-signature",
                            "v1," + sw_source._signature(secret, msg_id, stamp, raw))]
                else:
                    verify = verify_options(mapping)
                    message = verify.get("signed", "{body}").replace("{timestamp}", stamp)
                    head, _, tail = message.partition("{body}")
                    digest = hmac.new(secret.encode(), head.encode() + raw + tail.encode(),
                                      getattr(hashlib, verify.get("algorithm", "sha256")))
                    value = (base64.b64encode(digest.digest()).decode()
                             if verify.get("encoding") == "base64" else digest.hexdigest())
                    sig = [(verify["header"], verify.get("prefix", "") + value),
                           (verify["timestamp_header"], stamp)]
                if inside:
                    self.genuine_by_phone[phone.lstrip("+")] += 1
                self.post(group, label, name, raw, ctype, headers, sign_headers=sig,
                          may_store=inside, expect=STORED if inside else {401}, tag=tag)

    def run_hubspot_url(self) -> None:
        """HubSpot v3 signs the URL: another query, host or method is another request."""
        for name in [n for n in self.signed_names() if self.maps[n].preset.name == "hubspot"]:
            raw, ctype, _ = self.body(name, FORGED_PHONE, self.tag())
            sig, _ = self.sign(name, raw, f"/hooks/{name}?a=1")
            self.post("replay", "hubspot-v3-other-query", name, raw, ctype, sign_headers=sig,
                      target=f"/hooks/{name}?a=2", expect={401})
            self.post("replay", "hubspot-v3-added-query", name, raw, ctype, sign_headers=sig,
                      target=f"/hooks/{name}?a=1&b=2", expect={401})
            sig, _ = self.sign(name, raw, f"/hooks/{name}")
            data = http(self.port, "POST", f"/hooks/{name}",
                        [("Content-Type", ctype), *sig], raw, host="relay.example.com")
            self.send("replay", "hubspot-v3-other-host", name, data, expect={401})
            raw, ctype, _headers = self.body(name, self.phone(), self.tag())
            sig, _ = self.sign(name, raw, f"/hooks/{name}")
            self.post("replay", "hubspot-v3-x-forwarded-host", name, raw, ctype,
                      [("X-Forwarded-Host", "relay.example.com")], sign_headers=sig,
                      may_store="either", expect=STORED | REFUSED)

    def run_forged(self) -> None:
        group = "forged"
        for name in self.signed_names():
            mapping = self.maps[name]
            preset = mapping.preset.name
            for case, mutate in self.forgeries(name):
                tag = self.tag()
                # These carry the genuine signature next to a forged one: accepting them is
                # right (Stripe sends several v1 during a rotation), so their phone is genuine.
                carries_genuine = case in ("signature-twice-forged-first",
                                           "extra-forged-v1-first", "token-twice-forged-first")
                raw, ctype, headers = self.body(
                    name, self.phone() if carries_genuine else FORGED_PHONE, tag)
                sig, target = self.sign(name, raw, f"/hooks/{name}")
                raw, sig, target = mutate(raw, sig, target)
                self.post(group, case, name, raw, ctype, headers, sign_headers=sig,
                          target=target, tag=tag, may_store="either" if carries_genuine else False,
                          expect=({401, 400} | (STORED if carries_genuine else set())))
            # Signed, the way the sender signs, with a secret that is not this mapping's.
            if preset != "salesforce":
                tag = self.tag()
                raw, ctype, headers = self.body(name, FORGED_PHONE, tag)
                wrong = self.secret_for("WRONG_SECRET", preset)
                if ":" in mapping.secrets[0]:
                    wrong = "atkuser:" + wrong
                headers_, query = mapping.preset.sign(
                    wrong, mapping, Inbound(raw, {}, {}, "POST", self.url(f"/hooks/{name}")),
                    time.time())
                target = f"/hooks/{name}" + (
                    "?" + urllib.parse.urlencode(query) if query else "")
                self.post(group, "signed-with-wrong-secret", name, raw, ctype, headers,
                          sign_headers=list(headers_.items()), target=target, expect={401},
                          tag=tag)
        self.run_salesforce()
        self.run_hubspot_legacy()
        self.run_token_mappings()

    def forgeries(self, name: str) -> list[tuple[str, Any]]:
        """(case, mutate(raw, sig, target) -> (raw, sig, target)) for a signed mapping."""
        mapping = self.maps[name]
        preset = mapping.preset.name
        verify = verify_options(mapping)
        missing = ("missing-signature", lambda r, s, t: (r, [], t.split("?")[0]))
        if preset == "jotform" or (verify.get("type") == "token" and "query" in verify):
            key = "token" if preset == "jotform" else verify["query"]
            return [
                missing,
                ("empty-token", lambda r, s, t: (r, s, f"/hooks/{name}?{key}=")),
                ("wrong-token", lambda r, s, t: (r, s, f"/hooks/{name}?{key}=nope")),
                ("token-prefix", lambda r, s, t: (r, s, t[:-4])),
                ("token-plus-char", lambda r, s, t: (r, s, t + "x")),
                ("token-twice-one-wrong", lambda r, s, t: (r, s, t + f"&{key}=nope")),
                ("token-in-header", lambda r, s, t: (
                    r, [(key, urllib.parse.parse_qs(t.split("?", 1)[1])[key][0])],
                    t.split("?")[0])),
                ("token-name-uppercase", lambda r, s, t: (
                    r, s, t.replace(f"?{key}=", f"?{key.upper()}="))),
            ]
        secret = mapping.secrets[0] if mapping.secrets else ""
        if verify.get("type") == "basic":
            def basic(value: bytes) -> list[tuple[str, str]]:
                return [("Authorization", "Basic " + base64.b64encode(value).decode())]
            return [
                ("missing-authorization", lambda r, s, t: (r, [], t)),
                ("wrong-password", lambda r, s, t: (r, basic(b"atkuser:wrong"), t)),
                ("malformed-base64", lambda r, s, t: (r, [("Authorization", "Basic !!!")], t)),
                ("non-utf8-credentials", lambda r, s, t: (r, basic(b"\xff\xfe:\xff"), t)),
                ("bearer-with-secret", lambda r, s, t: (
                    r, [("Authorization", "Bearer " + secret)], t)),
                ("basic-empty", lambda r, s, t: (r, [("Authorization", "Basic ")], t)),
                ("basic-user-only", lambda r, s, t: (
                    r, basic(secret.split(":")[0].encode()), t)),
                ("basic-password-only", lambda r, s, t: (
                    r, basic(secret.split(":", 1)[1].encode()), t)),
                ("basic-secret-unencoded", lambda r, s, t: (
                    r, [("Authorization", "Basic " + secret)], t)),
            ]
        if verify.get("type") == "token":
            h = verify["header"]
            return [
                ("missing-token", lambda r, s, t: (r, [], t)),
                ("empty-token", lambda r, s, t: (r, [(h, "")], t)),
                ("wrong-token", lambda r, s, t: (r, [(h, "nope")], t)),
                ("token-prefix", lambda r, s, t: (r, [(h, secret[:-3])], t)),
                ("token-plus-char", lambda r, s, t: (r, [(h, secret + "x")], t)),
                ("token-in-query", lambda r, s, t: (
                    r, [], t + "?" + urllib.parse.urlencode({h: secret}))),
                ("token-twice-forged-first", lambda r, s, t: (r, [(h, "nope"), *s], t)),
                ("token-other-header", lambda r, s, t: (r, [("X-Token", secret)], t)),
            ]
        if preset == "salesforce":
            return []
        cases: list[tuple[str, Any]] = [missing]
        header = None

        def flip(value: str) -> str:
            i = len(value) - 3
            return value[:i] + ("A" if value[i] != "A" else "B") + value[i + 1:]

        def sig_mutation(fn):
            return lambda r, s, t: (r, [(k, fn(v)) if k.lower() == header else (k, v)
                                        for k, v in s], t)

        raw, _, _ = self.body(name, FORGED_PHONE, "probe")
        sig, _ = self.sign(name, raw, f"/hooks/{name}")
        # The header that carries the signature (the one whose value changes with the body).
        raw2, _, _ = self.body(name, FORGED_PHONE, "probe2")
        sig2, _ = self.sign(name, raw2, f"/hooks/{name}")
        for (k, v), (_, v2) in zip(sig, sig2, strict=False):
            if v != v2 and not (k.lower().endswith("timestamp") or k.lower().endswith("-id")):
                header = k.lower()
        if header is None:
            return cases
        cases += [
            ("empty-signature", sig_mutation(lambda v: "")),
            ("garbage-signature", sig_mutation(lambda v: "garbage")),
            ("flipped-char", sig_mutation(flip)),
            ("truncated-signature", sig_mutation(lambda v: v[:-6])),
            ("signature-plus-char", sig_mutation(lambda v: v + "0")),
            ("signature-of-other-body", lambda r, s, t: (r, sig, t)),
            ("non-latin1-signature", sig_mutation(lambda v: v[:-2] + "\u00e9\u20ac")),
            ("very-long-signature", sig_mutation(lambda v: v * 500)),
            ("signature-with-nul", sig_mutation(lambda v: v[:-1] + "\x00")),
            ("body-changed-after-signing", lambda r, s, t: (
                (r.replace(b"Asha", b"Mala") if b"Asha" in r else r + b" "), s, t)),
            ("body-with-appended-space", lambda r, s, t: (r + b" ", s, t)),
            ("signature-twice-forged-first", lambda r, s, t: (r, [(header, "AAAA"), *s], t)),
        ]
        if preset in ("typeform", "github"):
            cases += [("no-prefix", sig_mutation(lambda v: v.removeprefix("sha256="))),
                      ("sha1-prefix", sig_mutation(
                          lambda v: "sha1=" + v.removeprefix("sha256=")))]
        if preset in ("stripe", "calendly"):
            cases += [
                ("v0-only", sig_mutation(lambda v: v.replace("v1=", "v0="))),
                ("two-timestamps", sig_mutation(lambda v: v + f",t={int(time.time())}")),
                ("no-timestamp", sig_mutation(lambda v: v.split(",", 1)[1])),
                ("extra-forged-v1-first", sig_mutation(
                    lambda v: v.replace("v1=", "v1=00,v1="))),
            ]
        if preset == "standard-webhooks":
            cases += [
                ("v2-scheme", sig_mutation(lambda v: v.replace("v1,", "v2,"))),
                ("id-changed", lambda r, s, t: (
                    r, [(k, "msg_other") if k == "webhook-id" else (k, v) for k, v in s], t)),
                ("svix-and-webhook-mixed", lambda r, s, t: (
                    r, [(k.replace("webhook-signature", "svix-signature"), v) for k, v in s],
                    t)),
            ]
        if preset == "hubspot":
            cases += [("timestamp-changed", lambda r, s, t: (
                r, [(k, str(int(v) + 1)) if k.endswith("timestamp") else (k, v)
                    for k, v in s], t))]
        return cases

    def run_salesforce(self) -> None:
        group = "salesforce"
        for name in [n for n, m in self.maps.items() if m.preset.name == "salesforce"]:
            org = self.sf_org()

            def post(case: str, raw: bytes, expect: Any = REFUSED, may_store: Any = False,
                     tag: str | None = None, ctype: str = "text/xml",
                     name: str = name) -> Answer:
                return self.post(group, case, name, raw, ctype, signed=False,
                                 may_store=may_store, expect=expect, tag=tag)

            def one(org_value: str | None = None, org_xml: str | None = None,
                    doctype: str = "", inner: str = "") -> tuple[bytes, str]:
                tag = self.tag()
                return self.sf_xml([(f"04l{tag}", FORGED_PHONE)], org_value, org_xml, doctype,
                                   inner), tag

            for case, (org_value, org_xml) in {
                "wrong-org": ("00D000000000000AAA", None),
                "missing-org": (None, ""),
                "empty-org": ("", None),
                "org-lowercase": (org.lower(), None),
                "org-14-chars": (org[:14], None),
                "org-with-spaces": (f" {org} ", None),
                "org-nil": (None, '<OrganizationId xsi:nil="true"/>'),
                "org-repeated-wrong-first": (None, f"<OrganizationId>00D000000000000AAA"
                                                   f"</OrganizationId><OrganizationId>{org}"
                                                   "</OrganizationId>"),
                "org-repeated-right-first": (None, f"<OrganizationId>{org}</OrganizationId>"
                                                   "<OrganizationId>00D000000000000AAA"
                                                   "</OrganizationId>"),
                "org-with-child": (None, f"<OrganizationId><x>{org}</x></OrganizationId>"),
                "org-text-and-child": (None, f"<OrganizationId>{org}<x/></OrganizationId>"),
                "org-cdata-wrong": (None, "<OrganizationId><![CDATA[00D000000000000AAA]]>"
                                          "</OrganizationId>"),
            }.items():
                raw, tag = one(org_value if org_value is not None else org, org_xml)
                post(case, raw, tag=tag)
            # Only the first 15 characters are compared (documented): another 18-character
            # id with the same 15 is the same organization. A genuine phone, then.
            tag, phone = self.tag(), self.phone()
            self.genuine_by_phone[phone.lstrip("+")] += 1
            answer = post("org-15-chars-other-suffix", self.sf_xml(
                [(f"04l{tag}", phone)], org[:15] + "ZZZ"), expect=REFUSED | STORED,
                may_store="either", tag=tag)
            if answer.status == 200:
                self.observations.append(
                    f"salesforce: OrganizationId {org[:15]}ZZZ (the org's first 15 characters, "
                    "another checksum suffix) is accepted as the org, as docs/sources.md says")
            # Right org, but the id only inside a Notification.
            tag = self.tag()
            raw = self.sf_xml([(f"04l{tag}", FORGED_PHONE)], org_xml="",
                              inner=f"<Notification><OrganizationId>{org}</OrganizationId>"
                                    "<Id>x</Id><sObject><sf:MobilePhone xmlns:sf=\"urn:x\">"
                                    f"{FORGED_PHONE}</sf:MobilePhone></sObject></Notification>")
            post("org-only-inside-notification", raw, tag=tag)
            # 101 Notifications (right org): more than Salesforce sends.
            tag = self.tag()
            post("101-notifications", self.sf_xml(
                [(f"04l{tag}i{i}", FORGED_PHONE) for i in range(101)]), tag=tag)
            tag = self.tag()
            post("5000-notifications", self.sf_xml(
                [(f"04l{tag}i{i}", FORGED_PHONE) for i in range(5000)]), tag=tag)
            # DTDs and entities, right org.
            laughs = ('<!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">' + "".join(
                f'<!ENTITY {chr(98 + i)} "' + f"&{chr(97 + i)};" * 10 + '">' for i in range(8))
                + "]>")
            for case, doctype, phone in [
                ("internal-entity", f'<!DOCTYPE e [<!ENTITY x "{FORGED_PHONE}">]>', "&x;"),
                ("external-entity-file",
                 '<!DOCTYPE e [<!ENTITY x SYSTEM "file:///etc/passwd">]>', "&x;"),
                ("external-entity-http",
                 '<!DOCTYPE e [<!ENTITY x SYSTEM "http://127.0.0.1:1/x">]>', "&x;"),
                ("billion-laughs", laughs, "&i;"),
                ("parameter-entity",
                 '<!DOCTYPE e [<!ENTITY % p SYSTEM "file:///etc/passwd"> %p;]>', FORGED_PHONE),
                ("dtd-only", '<!DOCTYPE notifications SYSTEM "http://127.0.0.1:1/x.dtd">',
                 FORGED_PHONE),
                ("undeclared-entity", "", "&x;"),
            ]:
                tag = self.tag()
                post(case, self.sf_xml([(f"04l{tag}", phone)], org, None, doctype), tag=tag)
            # XInclude is not processed: right org, so it may be stored, but never with a
            # file's content in it (checked in the events rows).
            tag = self.tag()
            phone = self.phone()
            raw = self.sf_xml([(f"04l{tag}", phone)], inner=(
                '<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" '
                'href="file:///etc/passwd" parse="text"/>'))
            self.genuine_by_phone[phone.lstrip("+")] += 1
            post("xinclude-right-org", raw, expect=STORED | REFUSED, may_store="either", tag=tag)
            # Deep and malformed XML, right org.
            for case, raw in [
                ("deep-xml-10000", self.sf_xml([("04lx", FORGED_PHONE)], inner=(
                    "<a>" * DEEP + "</a>" * DEEP))),
                ("deep-xml-101", self.sf_xml([("04lx", FORGED_PHONE)], inner=(
                    "<a>" * 101 + "</a>" * 101))),
                ("truncated-xml", self.sf_xml([("04lx", FORGED_PHONE)])[:-40]),
                ("not-soap", b"<?xml version=\"1.0\"?><hello>" + FORGED_PHONE.encode()
                 + b"</hello>"),
                ("bad-utf8", self.sf_xml([("04lx", FORGED_PHONE)]).replace(b"Anita",
                                                                           b"An\xff\xfeita")),
                ("notification-text-only", self.sf_xml([], inner="<Notification>x</Notification>")),
                ("notifications-twice", self.sf_xml([("04lx", FORGED_PHONE)]).replace(
                    b"</soapenv:Body>", b"<notifications><OrganizationId>" + org.encode()
                    + b"</OrganizationId></notifications></soapenv:Body>")),
                ("json-body", json.dumps({"OrganizationId": org}).encode()),
                ("nul-bytes", self.sf_xml([("04lx", FORGED_PHONE)]).replace(b"Anita", b"A\x00")),
            ]:
                ctype = "application/json" if case == "json-body" else "text/xml"
                post(case, raw, ctype=ctype)
            for ctype in ("application/xml", "text/plain", "application/soap+xml", None):
                raw, tag = one(org)
                post(f"content-type-{ctype}", raw, ctype=ctype, tag=tag)

    def run_hubspot_legacy(self) -> None:
        group = "hubspot-legacy"
        for name in [n for n in self.signed_names() if self.maps[n].preset.name == "hubspot"]:
            mapping = self.maps[name]
            secret = mapping.secrets[0]
            legacy = mapping.legacy_signatures
            url = self.url(f"/hooks/{name}")
            phone = self.phone() if legacy else FORGED_PHONE
            tag = self.tag()
            raw, ctype, _ = self.body(name, phone, tag)
            v1 = hashlib.sha256(secret.encode() + raw).hexdigest()
            v2 = hashlib.sha256(secret.encode() + b"POST" + url.encode() + raw).hexdigest()
            if legacy:
                self.genuine_by_phone[phone.lstrip("+")] += 1
            self.post(group, "v1-genuine", name, raw, ctype, signed=False,
                      headers=[("X-HubSpot-Signature", v1)], may_store=legacy,
                      expect=STORED if legacy else {401}, tag=tag)
            self.post(group, "v1-genuine-replayed", name, raw, ctype, signed=False,
                      headers=[("X-HubSpot-Signature", v1)], expect=STORED | REFUSED, tag=tag)
            phone = self.phone() if legacy else FORGED_PHONE
            tag = self.tag()
            raw, ctype, _ = self.body(name, phone, tag)
            v2 = hashlib.sha256(secret.encode() + b"POST" + url.encode() + raw).hexdigest()
            if legacy:
                self.genuine_by_phone[phone.lstrip("+")] += 1
            self.post(group, "v2-genuine", name, raw, ctype, signed=False,
                      headers=[("X-HubSpot-Signature", v2),
                               ("X-HubSpot-Signature-Version", "v2")], may_store=legacy,
                      expect=STORED if legacy else {401}, tag=tag)
            tag = self.tag()
            raw, ctype, _ = self.body(name, FORGED_PHONE, tag)
            v1 = hashlib.sha256(secret.encode() + raw).hexdigest()
            for case, headers in [
                ("v1-with-version-v3", [("X-HubSpot-Signature", v1),
                                        ("X-HubSpot-Signature-Version", "v3")]),
                ("v1-with-version-junk", [("X-HubSpot-Signature", v1),
                                          ("X-HubSpot-Signature-Version", "v1\x00")]),
                ("v1-genuine-with-forged-v3", [("X-HubSpot-Signature", v1),
                                               ("X-HubSpot-Signature-v3", "AAAA"),
                                               ("X-HubSpot-Request-Timestamp",
                                                str(int(time.time() * 1000)))]),
                ("v1-uppercase-hex", [("X-HubSpot-Signature", v1.upper())]),
                ("v1-forged", [("X-HubSpot-Signature", "0" * 64)]),
            ]:
                self.post(group, case, name, raw, ctype, headers, signed=False,
                          expect={401, 400}, tag=tag)
            # Length extension of a genuine v1 signature: the signature holds for the
            # extended body; only the body's parsing can refuse it.
            tag = self.tag()
            raw, ctype, _ = self.body(name, self.phone(), tag)
            v1 = hashlib.sha256(secret.encode() + raw).hexdigest()
            append = b',{"eventId":1,"subscriptionId":1,"portalId":1,"subscriptionType":' \
                     b'"contact.propertyChange","propertyName":"phone","propertyValue":"' \
                     + FORGED_PHONE.encode() + b'"}]'
            glue, extended = length_extend(v1, len(secret) + len(raw), append)
            forged = raw + glue + append
            assert hashlib.sha256(secret.encode() + forged).hexdigest() == extended
            for ctype_case in ("application/json", "text/plain", None):
                self.post(group, f"v1-length-extension-{ctype_case}", name, forged, ctype_case,
                          [("X-HubSpot-Signature", extended)], signed=False,
                          expect={400, 401, 415}, tag=tag)

    def run_token_mappings(self) -> None:
        """Jotform and generic tokens: a genuine token with a few twists."""
        for name in [n for n in self.signed_names() if self.maps[n].preset.name == "jotform"]:
            tag = self.tag()
            raw, ctype, _ = self.body(name, FORGED_PHONE, tag)
            _, _target = self.sign(name, raw, f"/hooks/{name}")
            secret = self.maps[name].secrets[0]
            self.post("forged", "token-in-body-field", name, raw.replace(
                b"Clinic appointment", secret.encode()), ctype, signed=False,
                target=f"/hooks/{name}", expect={401}, tag=tag)
            self.post("forged", "token-in-fragment", name, raw, ctype, signed=False,
                      target=f"/hooks/{name}#token={urllib.parse.quote(secret)}", expect={401},
                      tag=tag)
            # A genuine token in requests the HTTP layer refuses: does it reach the log?
            quoted = urllib.parse.quote(secret)
            self.post("forged", "genuine-token-in-overlong-url", name, raw, ctype, signed=False,
                      target=f"/hooks/{name}?token={quoted}&pad=" + "x" * 9000,
                      expect={400, 414, "closed"}, tag=tag)
            data = http(self.port, "POST", f"/hooks/{name}?token={quoted}",
                        [("Content-Type", ctype), ("X-Bad", "a\x00b")], raw)
            self.send("forged", "genuine-token-with-bad-header", name, data,
                      expect={400, "closed"}, tag=tag)
            data = http(self.port, "POST", f"/hooks/{name}?token={quoted}",
                        [("Content-Type", ctype), ("Content-Length", "5"),
                         ("Transfer-Encoding", "chunked")], raw, length=False)
            self.send("forged", "genuine-token-with-smuggling-headers", name, data,
                      expect={400, "closed"}, tag=tag)
            self.post("forged", "token-percent-encoded-twice", name, raw, ctype, signed=False,
                      target=f"/hooks/{name}?token="
                             + urllib.parse.quote(urllib.parse.quote(secret + "%")),
                      expect={401}, tag=tag)

    def run_content_types(self) -> None:
        """A valid signature, a content type the sender does not post."""
        group = "content-type"
        for name in self.signed_names():
            mapping = self.maps[name]
            types = mapping.preset.content_types
            if types is None:
                continue
            boundary = "multipart/form-data; boundary=xyz"
            variants = ["", "text/plain", "application/x-www-form-urlencoded", boundary,
                        "text/xml", "application/json", "application/jsonx", "text/html",
                        "application/json-patch+json", "*/*", "application/json\x00",
                        "application/x-json", "multipart/mixed; boundary=xyz"]
            for ctype in variants:
                if ctype.split(";")[0] in types:
                    continue
                tag = self.tag()
                raw, _, headers = self.body(name, FORGED_PHONE, tag)
                self.post(group, f"type={ctype or '(none)'}", name, raw, ctype or None, headers,
                          expect={415, 400}, tag=tag)
            tag = self.tag()
            raw, right, headers = self.body(name, FORGED_PHONE, tag)
            self.post(group, "two-content-types-wrong-first", name, raw, "text/plain",
                      [*headers, ("Content-Type", right)], expect=REFUSED | STORED,
                      may_store="either", tag=tag)
            # The right type, spelled differently: accepted or not, never a 5xx.
            phone, tag = self.phone(), self.tag()
            raw, right, headers = self.body(name, phone, tag)
            self.genuine_by_phone[phone.lstrip("+")] += 1
            media = right.split(";")[0]
            self.post(group, "right-type-uppercase", name, raw,
                      media.upper() + right[len(media):], headers,
                      may_store="either", expect=STORED | REFUSED, tag=tag)

    def run_bodies(self) -> None:
        group = "body"
        limit = 1024 * 1024
        names = list(self.maps)
        # Huge bodies, forged and genuinely signed.
        big = b'{"x": "' + b"a" * (limit + 10) + b'"}'
        for name in ("typeform-leads", "attack-unverified", "salesforce-leads"):
            if name not in self.maps:
                continue
            self.post(group, "huge-declared", name, big, "application/json", signed=False,
                      expect={413, "closed"}, timeout=10)
        sig, _target = self.sign("typeform-leads", big, "/hooks/typeform-leads")
        self.post(group, "huge-genuinely-signed", "typeform-leads", big, "application/json",
                  sign_headers=sig, expect={413, "closed"}, timeout=10)
        self.send(group, "huge-declared-length-only", "typeform-leads", http(
            self.port, "POST", "/hooks/typeform-leads", [("Content-Type", "application/json"),
                                                        ("Content-Length", str(10**12))],
            b"", length=False), expect={413, 400, "closed"}, half_close=True)
        self.send(group, "content-length-20-digits", "typeform-leads", http(
            self.port, "POST", "/hooks/typeform-leads", [("Content-Length", "9" * 20)], b"{}",
            length=False), expect={413, 400, "closed"}, half_close=True)
        chunk = b"a" * 65536
        chunked = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(20)) + b"0\r\n\r\n"
        for name in ("typeform-leads", "attack-unverified"):
            self.send(group, "huge-chunked", name, http(
                self.port, "POST", f"/hooks/{name}", [("Content-Type", "application/json"),
                                                      ("Transfer-Encoding", "chunked")],
                chunked, length=False), expect={413, 400, 401, "closed"}, timeout=10)
        # Malformed bodies, each genuinely signed (they reach the parser) and forged.
        deep_list = b"[" * DEEP + b"]" * DEEP
        deep_obj = b'{"a":' * DEEP + b"1" + b"}" * DEEP
        malformed = [
            ("deep-json-array-10000", deep_list),
            ("deep-json-object-10000", deep_obj),
            ("deep-xml-10000", b"<a>" * DEEP + b"</a>" * DEEP),
            ("bad-utf8", b'{"event_id": "\xff\xfe\xfd", "phone": "' + FORGED_PHONE.encode()
             + b'"}'),
            ("overlong-utf8", b'{"event_id": "\xc0\xaf"}'),
            ("lone-surrogate-utf8-bytes", b'{"event_id": "\xed\xa0\x80"}'),
            ("truncated-json", b'{"event_id": "x", "form_response": {"answers": [{"type": "pho'),
            ("nul-bytes-raw", b'{"event_id": "x\x00", "a": 1}\x00\x00'),
            ("only-nul", b"\x00" * 64),
            ("number-1e400", b'{"event_id": "x", "n": 1e400}'),
            ("number-neg-1e400", b'{"event_id": "x", "n": -1e400}'),
            ("int-5000-digits", b'{"event_id": "x", "n": ' + b"9" * 5000 + b"}"),
            ("int-100000-digits", b'{"event_id": "x", "n": ' + b"9" * 100_000 + b"}"),
            ("NaN-literal", b'{"event_id": "x", "n": NaN}'),
            ("Infinity-literal", b'{"event_id": "x", "n": Infinity}'),
            ("trailing-garbage", b'{"event_id": "x"} {"event_id": "y"}'),
            ("utf16-json", '{"event_id": "x"}'.encode("utf-16")),
            ("many-keys", json.dumps({f"k{i}": i for i in range(50_000)}).encode()),
            ("long-string-900k", b'{"event_id": "' + b"x" * 900_000 + b'"}'),
            ("form-bomb", b"&".join(b"a%d=1" % i for i in range(100_000))),
        ]
        # Well-formed (if odd) bodies: a genuinely signed one may be stored (as failed).
        valid = {"many-keys", "long-string-900k", "form-bomb"}
        forged_subset = {"deep-json-array-10000", "bad-utf8", "int-100000-digits",
                         "many-keys", "truncated-json"}
        for name in names:
            mapping = self.maps[name]
            preset = mapping.preset.name
            ctype = (mapping.preset.content_types or ("application/json",))[0]
            if preset == "jotform":
                ctype = "multipart/form-data; boundary=xyz"
            for case, raw in malformed:
                if case == "form-bomb" and preset not in ("generic",):
                    continue
                body_ctype = "application/x-www-form-urlencoded" if case == "form-bomb" else ctype
                if case == "deep-xml-10000":
                    body_ctype = "text/xml" if preset in ("generic", "salesforce") else ctype
                signed = mapping.preset.verifies(mapping) and preset != "salesforce"
                if signed:
                    # Jotform's multipart parser reads anything as some fields: stored as
                    # failed, which a token-holder may do.
                    lenient = case in valid or preset == "jotform"
                    self.post(group, f"signed-{case}", name, raw, body_ctype,
                              expect={400, 413, 415} | (STORED if lenient else set()),
                              may_store="either" if lenient else False)
                    if case in forged_subset:
                        self.post(group, f"forged-{case}", name, raw, body_ctype,
                                  signed=False, expect={401, 400, 413, 415})
                else:  # unverified and Salesforce: everyone reaches the parser
                    unverified = not mapping.preset.verifies(mapping)
                    self.post(group, f"unsigned-{case}", name, raw, body_ctype, signed=False,
                              expect={400, 401, 413, 415, 429} | (
                                  STORED if unverified else set()),
                              may_store="either" if unverified else False)
        # Multipart bombs for Jotform, with the right token (parsed after verification).
        for name in [n for n in self.signed_names() if self.maps[n].preset.name == "jotform"]:
            parts = b"".join(b"--b\r\nContent-Disposition: form-data; name=\"f%d\"\r\n\r\nx\r\n"
                             % i for i in range(5000)) + b"--b--\r\n"
            self.post(group, "signed-multipart-5000-parts", name, parts,
                      "multipart/form-data; boundary=b", expect={400, 413})
            self.post(group, "signed-multipart-no-boundary", name, parts, "multipart/form-data",
                      expect={400})
            self.post(group, "signed-multipart-unterminated", name, parts[:-10],
                      "multipart/form-data; boundary=b", expect={400, 422}, may_store="either")
        self.run_lying_lengths()

    def run_lying_lengths(self) -> None:
        group = "framing"
        name = "typeform-leads"
        # One genuinely signed webhook (a genuine phone) in many framings: whichever framing
        # the server reads as this body may store it once; a misread one must not.
        tag = self.tag()
        phone = self.phone()
        self.replay_phones[phone.lstrip("+")] = "framing variants of one webhook"
        raw, ctype, _headers = self.body(name, phone, tag)
        sig, target = self.sign(name, raw, f"/hooks/{name}")
        base = [("Content-Type", ctype), *sig]

        def send(case: str, data: bytes, expect: Any, **kwargs: Any) -> None:
            self.send(group, case, name, data, expect=set(expect) | STORED, tag=tag,
                      may_store="either", **kwargs)

        send("content-length-longer-then-eof", http(
            self.port, "POST", target, [*base, ("Content-Length", str(len(raw) + 100))], raw,
            length=False), {400, "closed"}, half_close=True)
        send("content-length-shorter", http(
            self.port, "POST", target, [*base, ("Content-Length", str(len(raw) - 10))], raw,
            length=False), {401, 400})
        for value in ("abc", "-1", "+10", " 10", "0x10", "1e3", "10, 10", "", "١٠"):
            send(f"content-length-{value!r}", http(
                self.port, "POST", target, [*base, ("Content-Length", value)], raw,
                length=False), {400, 401, 411, "closed"}, half_close=True)
        send("two-content-lengths", http(
            self.port, "POST", target, [*base, ("Content-Length", str(len(raw))),
                                        ("Content-Length", "5")], raw, length=False),
             {400, "closed"})
        send("content-length-and-chunked", http(
            self.port, "POST", target, [*base, ("Content-Length", "5"),
                                        ("Transfer-Encoding", "chunked")],
            b"%x\r\n%s\r\n0\r\n\r\n" % (len(raw), raw), length=False), {400, 401, "closed"})
        for te in ("gzip, chunked", "chunked, chunked", "xchunked", "chunked\x00", "identity",
                   "Chunked"):
            send(f"transfer-encoding-{te!r}", http(
                self.port, "POST", target, [*base, ("Transfer-Encoding", te)],
                b"%x\r\n%s\r\n0\r\n\r\n" % (len(raw), raw), length=False),
                 REFUSED | {501}, half_close=True)
        for case, body in [
            ("chunk-size-junk", b"zz\r\nabc\r\n0\r\n\r\n"),
            ("chunk-size-overflow", b"f" * 40 + b"\r\nabc\r\n0\r\n\r\n"),
            ("chunk-missing-final", b"%x\r\n%s\r\n" % (len(raw), raw)),
            ("chunk-size-negative", b"-5\r\nabc\r\n0\r\n\r\n"),
            ("chunk-extension", b"%x;ext=1\r\n%s\r\n0\r\n\r\n" % (len(raw), raw)),
            ("chunk-trailer", b"%x\r\n%s\r\n0\r\nX-Trailer: 1\r\n\r\n" % (len(raw), raw)),
            ("chunk-bare-lf", b"%x\n%s\n0\n\n" % (len(raw), raw)),
        ]:
            send(case, http(self.port, "POST", target,
                            [*base, ("Transfer-Encoding", "chunked")], body, length=False),
                 {400, 401, "closed"}, half_close=True)
        # The body promised and never sent, the connection held open: does the server give
        # up on it (RELAY_REQUEST_TIMEOUT is 3 s here) or hold a thread for as long as the
        # client likes?
        send("content-length-longer-held-open", http(
            self.port, "POST", target, [*base, ("Content-Length", str(len(raw) + 100))], raw,
            length=False), {400, 408, "closed"}, timeout=6, may_hang=True)
        send("http-1.0-no-host", http(self.port, "POST", target, base, raw, host=False,
                                      version=b"HTTP/1.0"), {401, 400})
        send("absolute-uri", http(self.port, "POST", f"http://evil.example{target}", base, raw),
             {401, 400})
        send("garbage-request-line", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" * 20,
             {400, "closed"}, half_close=True)
        send("expect-100-continue", http(self.port, "POST", target,
                                         [*base, ("Expect", "100-continue")], raw), {401})
        send("http-2-preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", {400, 505, "closed"},
             half_close=True)
        send("http-0.9", b"GET /hooks/typeform-leads\r\n", {400, "closed"}, half_close=True)

    def run_names(self) -> None:
        group = "names"
        raw, ctype, _ = self.body("typeform-leads", FORGED_PHONE, self.tag())
        names = [
            "%0A", "%0D%0A", "%00", "typeform-leads%00", "typeform-leads%0A", "%2e%2e", "..",
            ".", "..%2F..%2Fetc%2Fpasswd", "..%2Ftypeform-leads", "%2E%2E%2Fmappings",
            "typeform-leads%2F..%2Ftypeform-leads", "typeform-leads%20", "%20typeform-leads",
            "TYPEFORM-LEADS", "typeform-leads.yaml", "typeform-leads.yml", "typeform-leads;x",
            "typeform-leads%3Bx", "typeform_leads", "%E2%80%AEsdael-mrofepyt", "%F0%9F%98%80",
            "%FF%FE", "%C0%AE%C0%AE", "%ED%A0%80", "caf%C3%A9", "x" * 3000, "x" * 9000,
            "%25%30%30", "*", "%22%3E%3Cscript%3Ealert(1)%3C%2Fscript%3E", "${HOME}",
            "%0AINJECTED-LOG-LINE%20refused%20mapping=typeform-leads:%20forged",
            "%E2%80%A8INJECTED-LOG-LINE-U2028", "%C2%85INJECTED-LOG-LINE-NEL",
            "x%0D%0AX-Injected:%201", "typeform-leads?x=%0A", "typeform-leads#frag",
            "relay.db", "..%5C..%5Cwindows", "%5C", "con", "-", "a" * 255,
        ]
        for name in names:
            self.send(group, f"name={name[:40]}", name[:40], http(
                self.port, "POST", f"/hooks/{name}", [("Content-Type", ctype)], raw),
                expect={404, 400, 401, 414, 405})
        for path in ["/hooks/", "/hooks", "/hooks//typeform-leads", "/hooks/typeform-leads/",
                     "/hooks/typeform-leads/x", "/HOOKS/typeform-leads", "//hooks/typeform-leads",
                     "/./hooks/typeform-leads", "/hooks/./typeform-leads",
                     "/hooks/../hooks/typeform-leads", "/x/../hooks/typeform-leads"]:
            self.send(group, f"path={path}", "typeform-leads", http(
                self.port, "POST", path, [("Content-Type", ctype)], raw),
                expect={404, 400, 401, 405, 308, 301})
        raw_paths = [b"/hooks/caf\xc3\xa9", b"/hooks/\xff\xfe", b"/hooks/a\x00b", b"/hooks/a b",
                     b"/hooks/a\tb", b"/hooks/\x7f"]
        for path in raw_paths:
            self.send(group, f"raw-path={path!r}"[:50], "-", http(
                self.port, "POST", path, [("Content-Type", ctype)], raw),
                expect={404, 400, "closed"}, half_close=True)

    def run_headers(self) -> None:
        group = "headers"
        for name in [n for n in ("typeform-leads", "stripe-payments", "salesforce-leads",
                                 "hubspot-contacts", "jotform-appointments") if n in self.maps]:
            tag = self.tag()
            raw, ctype, headers = self.body(name, FORGED_PHONE, tag)
            if self.maps[name].preset.name == "salesforce":  # unsigned: a wrong org is forged
                raw = self.sf_xml([(f"04l{tag}", FORGED_PHONE)], org="00D000000000000AAA")
            for case, extra in [
                ("90-headers", [(f"X-F{i}", "v") for i in range(90)]),
                ("101-headers", [(f"X-F{i}", "v") for i in range(101)]),
                ("1000-headers", [(f"X-F{i}", "v") for i in range(1000)]),
                ("header-8190-bytes", [("X-Big", "a" * 8190)]),
                ("header-64k", [("X-Big", "a" * 65536)]),
                ("40-headers-of-4k", [(f"X-B{i}", "a" * 4000) for i in range(40)]),
                ("header-with-nul", [("X-Nul", "a\x00b")]),
                ("header-utf8-bytes", [("X-Utf8", "caf\u00e9 \u2028 \U0001f600")]),
                ("header-no-colon", [("X-No-Colon", None)]),
                ("obs-fold", [("X-Fold", "a\r\n b")]),
                ("space-before-colon", [("X-Space ", "a")]),
                ("underscore-name", [("X_Forwarded_For", "1.2.3.4"),
                                     ("X_Forwarded_Host", "evil.example")]),
                ("bad-name-chars", [("X(Bad)", "a"), ("X@Y", "b")]),
                ("huge-cookie", [("Cookie", "; ".join(f"c{i}=v" for i in range(500)))]),
                ("200-forged-signature-headers", [(k, f"sha256=AAAA{i}") for i in range(200)
                                                  for k in ["Typeform-Signature"]]),
                ("duplicate-host", [("Host", "evil.example")]),
                ("x-forwarded-everything", [("X-Forwarded-Host", "evil.example"),
                                            ("X-Forwarded-Proto", "https"),
                                            ("X-Forwarded-For", "10.0.0.1"),
                                            ("Forwarded", "for=1.1.1.1;host=evil")]),
            ]:
                lines = [("Content-Type", ctype), *headers]
                data = http(self.port, "POST", f"/hooks/{name}", lines, raw)
                head, _, body = data.partition(b"\r\n\r\n")
                injected = b"".join(b"\r\n" + (_b(k) if v is None else _b(k) + b": " + _b(v))
                                    for k, v in extra)
                self.send(group, case, name, head + injected + b"\r\n\r\n" + body,
                          expect=REFUSED, tag=tag, half_close=True)
            # A genuine signature among 90 junk headers: a webhook still.
            phone, tag = self.phone(), self.tag()
            raw, ctype, headers = self.body(name, phone, tag)
            self.genuine_by_phone[phone.lstrip("+")] += 1
            self.post(group, "genuine-among-90-headers", name, raw, ctype,
                      headers + [(f"X-F{i}", "v") for i in range(90)], may_store=True, tag=tag)

    def run_methods(self) -> None:
        group = "methods"
        for name in self.maps:
            raw, ctype, _ = self.body(name, FORGED_PHONE, self.tag())
            for method in ("GET", "HEAD", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE",
                           "PROPFIND", "post", "FOO", "CONNECT"):
                target = f"/hooks/{name}"
                self.send(group, method, name, http(
                    self.port, method, target, [("Content-Type", ctype)],
                    raw if method not in ("GET", "HEAD") else b""),
                    expect={405, 400}, head_only=method == "HEAD")
                if self.records[-1].status == 405 and self.records[-1].allow_header != "POST":
                    self.records[-1].notes.append(f"Allow: {self.records[-1].allow_header}")

    def run_fuzz(self, count: int) -> None:
        """Random single mutations of genuinely signed requests (forged phone): a mutated
        signed request is a forged one."""
        group = "fuzz"
        names = self.body_signed_names()
        token_names = [n for n in self.signed_names() if n not in names
                       and self.maps[n].preset.name != "salesforce"]
        for _i in range(count):
            name = self.rng.choice(names + token_names)
            tag = self.tag()
            raw, ctype, headers = self.body(name, FORGED_PHONE, tag)
            sig, target = self.sign(name, raw, f"/hooks/{name}")
            choice = self.rng.randrange(6) if name in names else 6
            case = ""
            if choice == 0:  # flip one byte of the body
                j = self.rng.randrange(len(raw))
                raw = raw[:j] + bytes([raw[j] ^ (1 << self.rng.randrange(8))]) + raw[j + 1:]
                case = "body-bit-flip"
            elif choice == 1:  # one character of a signature header
                k = self.rng.randrange(len(sig))
                key, value = sig[k]
                if value:
                    j = self.rng.randrange(len(value))
                    repl = self.rng.choice("0123456789abcdefABCDEF+/=,")
                    if repl == value[j]:
                        repl = "Z"
                    sig[k] = (key, value[:j] + repl + value[j + 1:])
                case = f"header-char:{key}"
            elif choice == 2:  # drop a signature header
                sig.pop(self.rng.randrange(len(sig)))
                case = "header-dropped"
            elif choice == 3:  # truncate the body
                raw = raw[:self.rng.randrange(len(raw))]
                case = "body-truncated"
            elif choice == 4:  # append bytes
                raw = raw + self.rng.choice([b" ", b"\n", b"\x00", b"}", b",", b"\xff"])
                case = "body-appended"
            elif choice == 5:  # another request's signature
                other, _, _ = self.body(name, FORGED_PHONE, self.tag())
                sig, target = self.sign(name, other, f"/hooks/{name}")
                case = "signature-of-another-body"
            else:  # token mappings: mutate the token
                mapping = self.maps[name]
                secret = mapping.secrets[0]
                bad = self.rng.choice([secret[:-1], secret + "a", secret.upper(),
                                       secret[1:], secret[:5], " " + secret + "x",
                                       secret[:-1] + chr(ord(secret[-1]) ^ 1)])
                if bad == secret:
                    bad = secret + "z"
                if sig:
                    sig = [(k, v.replace(secret, bad)) if secret in v else
                           (k, "Basic " + base64.b64encode(bad.encode()).decode())
                           for k, v in sig]
                target = target.replace(urllib.parse.quote_plus(secret),
                                        urllib.parse.quote_plus(bad))
                case = "token-mutated"
            self.post(group, case, name, raw, ctype, headers, sign_headers=sig, target=target,
                      expect={401, 400, 415}, tag=tag)

    def run_hostile_stored(self) -> None:
        """Content a (genuine or unverified) sender can get stored: the console and the
        worker must cope with it."""
        group = "stored-hostile"
        deep = [(f"deep-attribute-{d}", None) for d in (100, 200, 300, 400, 500, 900, 980)]
        values: list[tuple[str, Any]] = [
            ("lone-surrogate", "\ud800"),
            ("nul-escaped", "a\u0000b"),
            ("rtl-override", "\u202egnp.exe"),
            ("html-script", "<script>alert('atk')</script>"),
            ("big-int-4000-digits", "__BIGINT__"),
            ("long-string-500k", "x" * 500_000),
            ("template-syntax", "{{ 7*7 }}{% raw %}"),
        ]
        for name in [n for n in ("typeform-leads", "crm-leads", "attack-unverified")
                     if n in self.maps]:
            for case, value in values + deep:
                phone, tag = self.phone(), self.tag()
                raw, ctype, headers = self.body(name, phone, tag, extra="__EXTRA__",
                                                person=value if case in (
                                                    "lone-surrogate", "html-script") else "Asha")
                if case.startswith("deep-attribute"):
                    depth = int(case.rsplit("-", 1)[1])  # a list nested this deep
                    inner = b"[" * depth + b"1" + b"]" * depth
                elif case == "big-int-4000-digits":
                    inner = b"9" * 4000
                else:
                    inner = json.dumps(value).encode()
                raw = raw.replace(b'"__EXTRA__"', inner)
                answer = self.post(group, case, name, raw, ctype, headers, may_store=True,
                                   expect=STORED | {400}, tag=tag)
                self.genuine_by_phone[phone.lstrip("+")] += 1
                body = answer.json()
                if isinstance(body, dict) and body.get("event_id"):
                    self.hostile_events.append((f"{name}/{case}", body["event_id"]))

    def run_unverified_flood(self) -> None:
        name = "attack-unverified"
        for _i in range(3 * UNVERIFIED_LIMIT * WEB_WORKERS // 2 + 10):
            phone, tag = self.phone(), self.tag()
            raw, ctype, _ = self.body(name, phone, tag)
            answer = self.post("unverified", "flood", name, raw, ctype, signed=False,
                               may_store=True, expect=STORED | {429}, tag=tag)
            if answer.status in (200, 202):
                self.genuine_by_phone[phone.lstrip("+")] += 1
            elif answer.status == 429 and not answer.header("retry-after"):
                self.records[-1].notes.append("429 without Retry-After")

    # --- admin ------------------------------------------------------------------------------

    def admin(self, case: str, method: str, target: str, headers: list = (), body: bytes = b"",
              *, group: str = "admin", expect: Any = None, cookie: str | None = None,
              auth: bool = True, timeout: float = 8.0) -> Answer:
        h = list(headers)
        if auth:
            h.append(("Authorization", f"Bearer {self.secrets['RELAY_ADMIN_TOKEN']}"))
        if cookie:
            h.append(("Cookie", cookie))
        return self.send(group, case, "-", http(self.port, method, target, h, body),
                         expect=expect, timeout=timeout)

    def run_admin(self) -> None:
        group = "admin-open"
        for path in ("/healthz", "/readyz", "/metrics"):
            answer = self.admin(f"GET {path}", "GET", path, auth=False, group=group,
                                expect={200})
            if path == "/metrics":  # hostile names must not become label values
                labels = set(re.findall(rb'mapping="([^"]*)"', answer.body))
                odd = {x for x in labels if x.decode(errors="replace") not in self.maps
                       and x != b"(unknown)"}
                self.metrics_labels = (len(labels), len(answer.body))
                if odd:
                    self.findings.append(f"/metrics has {len(odd)} mapping label(s) no mapping "
                                         f"has: {sorted(odd)[:5]}")
            self.admin(f"POST {path}", "POST", path, auth=False, group=group,
                       expect={405, 404})
        self.admin("GET /readyz?x=%00", "GET", "/readyz?x=%00", auth=False, group=group,
                   expect={200})
        # Without a token.
        group = "admin-no-token"
        for method, path in [("GET", "/admin"), ("GET", "/admin/"), ("GET", "/admin/events/1"),
                             ("GET", "/admin/failures"), ("GET", "/admin/playground"),
                             ("POST", "/admin/playground"), ("POST", "/admin/events/1/replay"),
                             ("POST", "/admin/failures/replay"), ("POST", "/admin/logout"),
                             ("GET", "/api/events"), ("GET", "/api/events/1"),
                             ("POST", "/api/replay"), ("POST", "/api/preview"),
                             ("GET", "/api/failures"), ("GET", "/api/openapi.json"),
                             ("POST", "/api/events/1/replay"), ("GET", "/api"),
                             ("GET", "/admin/../api/events"), ("GET", "/api/events%2F1"),
                             ("GET", "/API/events"), ("GET", "/api//events")]:
            body = b'{"dead": true}' if method == "POST" else b""
            self.admin(f"{method} {path}", method, path, [("Content-Type", "application/json")],
                       body, auth=False, group=group, expect={302, 401, 404, 405, 308})
        for case, value in [("bearer-empty", "Bearer "), ("basic-token", "Basic " + base64.
                                                            b64encode(b"admin:x").decode()),
                            ("token-as-scheme", self.secrets["RELAY_ADMIN_TOKEN"])]:
            self.send(group, case, "-", http(self.port, "GET", "/api/events",
                                             [("Authorization", value)]),
                      expect={401, 429})
        # With the token: hostile parameters.
        group = "admin-api"
        for value in ("-1", "0", "501", "abc", "9" * 30, "1e2", " 5", "5%00", "%EF%BC%95",
                      "5.5", "", "500", "1", "0x10", "-0"):
            self.admin(f"limit={value}", "GET", f"/api/events?limit={value}", group=group,
                       expect={200, 400})
        for query in ("status=%3Cscript%3E", "status=dead", "status=", "mapping=%27%20OR%201=1--",
                      "mapping=%00", "mapping=" + "x" * 5000, "status=pending&status=dead",
                      "limit=10&limit=-5", "mapping[]=x", "since=1e308d"):
            self.admin(f"events?{query[:40]}", "GET", f"/api/events?{query}", group=group,
                       expect={200, 400, 414})
        for value in ("0", "-1", "1", "9223372036854775807", "9223372036854775808", "9" * 40,
                      "abc", "1.0", "0x10", "%00", "%EF%BC%91", "1%20", "01", "+1", "1e3"):
            self.admin(f"events/{value}", "GET", f"/api/events/{value}", group=group,
                       expect={200, 404, 400})
            self.admin(f"events/{value}/replay", "POST", f"/api/events/{value}/replay",
                       group=group, expect={200, 404, 400, 405, 422})
        for case, body, ctype in [
            ("replay-list", b"[]", "application/json"),
            ("replay-string", b'"x"', "application/json"),
            ("replay-null", b"null", "application/json"),
            ("replay-dead-string", b'{"dead": "yes"}', "application/json"),
            ("replay-dead-int", b'{"dead": 1}', "application/json"),
            ("replay-mapping-int", b'{"failed": true, "mapping": 5}', "application/json"),
            ("replay-unknown-key", b'{"deadd": true}', "application/json"),
            ("replay-empty", b"{}", "application/json"),
            ("replay-nothing-matches", b'{"dead": true, "mapping": "no-such-mapping"}',
             "application/json"),
            ("replay-invalid-json", b'{"dead": tru', "application/json"),
            ("replay-not-json-type", b'{"dead": true}', "text/plain"),
            ("replay-form", b"dead=true", "application/x-www-form-urlencoded"),
            ("replay-deep-json-10000", b"[" * DEEP + b"]" * DEEP, "application/json"),
            ("replay-deep-object-10000", b'{"a":' * DEEP + b"1" + b"}" * DEEP,
             "application/json"),
            ("replay-bad-utf8", b'{"dead": "\xff"}', "application/json"),
            ("replay-huge-number", b'{"dead": ' + b"9" * 5000 + b"}", "application/json"),
            ("replay-nan", b'{"dead": NaN}', "application/json"),
            ("replay-1mb", b'{"mapping": "' + b"x" * 2_000_000 + b'"}', "application/json"),
        ]:
            self.admin(case, "POST", "/api/replay", [("Content-Type", ctype)], body,
                       group=group, expect={200, 400, 413, 415})
        typeform = "typeform-leads"
        for case, spec in [
            ("preview-mapping-int", {"mapping": 5}),
            ("preview-body-object", {"mapping": typeform, "body": {}}),
            ("preview-headers-list", {"mapping": typeform, "headers": []}),
            ("preview-header-int", {"mapping": typeform, "headers": {"a": 1}}),
            ("preview-query-nested", {"mapping": typeform, "query": {"a": {"b": 1}}}),
            ("preview-path-mapping", {"mapping": "../../etc/passwd"}),
            ("preview-nul-mapping", {"mapping": "typeform-leads\u0000"}),
            ("preview-unknown-key", {"mapping": typeform, "x": 1}),
            ("preview-deep-body", {"mapping": typeform, "body": "[" * DEEP + "]" * DEEP}),
            ("preview-deep-body-900", {"mapping": "attack-unverified", "body": json.dumps(
                {"id": "p", "phone": "+919812345678", "name": "x"})[:-1]
                + ', "extra": ' + "[" * 900 + "1" + "]" * 900 + "}"}),
            ("preview-surrogate-body", {"mapping": "attack-unverified", "body": json.dumps(
                {"id": "p", "phone": "+919812345678", "name": "\ud800"})}),
            ("preview-xml-entity", {"mapping": "salesforce-leads",
                                    "headers": {"Content-Type": "text/xml"},
                                    "body": self.sf_xml([("x", "&x;")], doctype=(
                                        '<!DOCTYPE e [<!ENTITY x SYSTEM "file:///etc/passwd">]>')
                                                        ).decode()}),
            ("preview-wrong-org", {"mapping": "salesforce-leads",
                                   "headers": {"Content-Type": "text/xml"},
                                   "body": self.sf_xml([("x", FORGED_PHONE)],
                                                       org="00D000000000000AAA").decode()}),
            ("preview-text-plain", {"mapping": typeform, "body": "x",
                                    "headers": {"Content-Type": "text/plain"}}),
            ("preview-genuine", {"mapping": typeform, "body": self.body(
                typeform, "+919812345678", "preview")[0].decode()}),
            ("preview-huge-number", {"mapping": typeform, "body": '{"n": 1e400}'}),
        ]:
            if spec.get("mapping") not in self.maps and spec["mapping"] in (
                    "attack-unverified", "salesforce-leads"):
                continue
            body = json.dumps(spec).encode()
            self.admin(case, "POST", "/api/preview", [("Content-Type", "application/json")],
                       body, group=group, expect={200, 400, 404})
        self.admin("preview-deep-json-10000", "POST", "/api/preview",
                   [("Content-Type", "application/json")], b"[" * DEEP + b"]" * DEEP,
                   group=group, expect={400})
        self.admin("preview-deep-object-10000", "POST", "/api/preview",
                   [("Content-Type", "application/json")],
                   b'{"mapping": "typeform-leads", "x": ' + b"[" * DEEP + b"]" * DEEP + b"}",
                   group=group, expect={400})
        for path in ("/api/failures", "/api/openapi.json", "/admin/", "/admin/failures",
                     "/admin/playground", "/api/events?limit=500"):
            self.admin(f"GET {path}", "GET", path, group=group, expect={200})
        # The console with the token, hostile filters.
        group = "admin-console"
        for query in ("before=-1", "before=" + "9" * 30, "before=abc", "since=garbage",
                      "since=" + "9" * 400 + "d", "since=99999999d", "since=2026-13-45",
                      "since=%00", "phone=%00", "phone=" + "9" * 500, "phone=%2B919999999999",
                      "phone=abc", "status=%3Cscript%3E",
                      "mapping=%3Cscript%3Ealert(1)%3C%2Fscript%3E",
                      "mapping=" + "x" * 5000, "phone=%F0%9F%98%80", "phone=%ED%A0%80"):
            answer = self.admin(f"events?{query[:40]}", "GET", f"/admin/?{query}", group=group,
                                expect={200, 400, 414})
            if b"<script>alert(1)</script>" in answer.body:
                self.findings.append(f"the console reflects <script> unescaped: /admin/?{query}")
        for case, fields in [
            ("playground-deep", {"mapping": "typeform-leads", "body": "[" * DEEP + "]" * DEEP}),
            ("playground-unknown-mapping", {"mapping": "../x", "body": "{}"}),
            ("playground-headers-junk", {"mapping": "typeform-leads", "body": "{}",
                                         "headers": "::::\n\x00:\x00\nContent-Type: text/xml"}),
        ]:
            self.admin(case, "POST", "/admin/playground",
                       [("Content-Type", "application/x-www-form-urlencoded")],
                       urllib.parse.urlencode(fields).encode(), group=group, expect={200, 400})
        for value in ("9" * 30, "-1", "0", "abc", "1" * 19):
            self.admin(f"failures/replay event={value[:20]}", "POST", "/admin/failures/replay",
                       [("Content-Type", "application/x-www-form-urlencoded")],
                       f"event={value}".encode(), group=group, expect={302, 200, 400})
        for value in ("0", "9223372036854775808", "9" * 40, "-1"):
            self.admin(f"admin/events/{value[:20]}", "GET", f"/admin/events/{value}",
                       group=group, expect={404})
        # Every stored hostile event, in the console and the API.
        group = "admin-hostile-events"
        for case, event_id in self.hostile_events:
            page = self.admin(f"console {case}", "GET", f"/admin/events/{event_id}",
                              group=group, expect={200})
            if b"<script>alert('atk')</script>" in page.body:
                self.findings.append(f"/admin/events/{event_id} ({case}) shows <script> "
                                     "unescaped")
            self.admin(f"api {case}", "GET", f"/api/events/{event_id}", group=group,
                       expect={200})
        self.admin("console events list", "GET", "/admin/?mapping=typeform-leads", group=group,
                   expect={200})
        self.admin("console events list unverified", "GET", "/admin/?mapping=attack-unverified",
                   group=group, expect={200})
        self.admin("api events list", "GET", "/api/events?limit=500", group=group, expect={200})
        self.admin("console failures", "GET", "/admin/failures", group=group, expect={200})

    def run_replay_api(self) -> None:
        """Replaying a delivered event through the API must not call Engati again."""
        delivered = self.db_rows("SELECT e.id, d.phone FROM events e JOIN deliveries d ON "
                                 "d.event_id = e.id WHERE d.status = 'delivered' AND "
                                 "e.mapping = 'typeform-leads' ORDER BY e.id LIMIT 2")
        self.api_replayed = []
        for event_id, phone in delivered:
            self.replay_phones.setdefault(phone, f"api replay of delivered event {event_id}")
            self.admin(f"replay delivered event {event_id}", "POST",
                       f"/api/events/{event_id}/replay", group="admin-api",
                       expect={200, 422})
            self.api_replayed.append((event_id, phone))

    def run_sessions(self) -> None:
        group = "admin-session"
        token = self.secrets["RELAY_ADMIN_TOKEN"]
        page = self.admin("GET login", "GET", "/admin/login", auth=False, group=group,
                          expect={200})
        if page.header("set-cookie"):
            self.observations.append("GET /admin/login (anonymous) sets a cookie")
        form = urllib.parse.urlencode({"token": token, "next": "/admin/failures"}).encode()
        login = self.admin("POST login (right token)", "POST", "/admin/login",
                           [("Content-Type", "application/x-www-form-urlencoded")], form,
                           auth=False, group=group, expect={302, 303})
        cookie = (login.header("set-cookie") or "").split(";")[0]
        if not cookie:
            self.findings.append("logging in with the right token set no session cookie")
            return
        events = self.admin("GET /admin/ with cookie", "GET", "/admin/", cookie=cookie,
                            auth=False, group=group, expect={200})
        match = re.search(rb'name="csrf" value="([^"]+)"', events.body)
        csrf = match.group(1).decode() if match else ""
        self.admin("POST /api/replay cookie no CSRF", "POST", "/api/replay",
                   [("Content-Type", "application/json")], b'{"dead": true, "mapping": "none"}',
                   cookie=cookie, auth=False, group=group, expect={403})
        self.admin("POST /api/replay cookie wrong CSRF", "POST", "/api/replay",
                   [("Content-Type", "application/json"), ("X-CSRF-Token", "x")],
                   b'{"dead": true, "mapping": "none"}', cookie=cookie, auth=False,
                   group=group, expect={403})
        self.admin("POST /admin/failures/replay cookie no CSRF", "POST",
                   "/admin/failures/replay", [("Content-Type",
                                               "application/x-www-form-urlencoded")],
                   b"event=1", cookie=cookie, auth=False, group=group, expect={400})
        tampered = cookie[:-3] + ("A" if cookie[-3] != "A" else "B") + cookie[-2:]
        self.admin("GET /admin/ tampered cookie", "GET", "/admin/", cookie=tampered,
                   auth=False, group=group, expect={302})
        self.admin("POST logout", "POST", "/admin/logout",
                   [("Content-Type", "application/x-www-form-urlencoded")],
                   urllib.parse.urlencode({"csrf": csrf}).encode(), cookie=cookie, auth=False,
                   group=group, expect={302, 303})
        replayed = self.admin("GET /admin/ cookie after logout", "GET", "/admin/",
                              cookie=cookie, auth=False, group=group, expect={302})
        if replayed.status == 200:
            self.findings.append("a session cookie still opens /admin/ after logout")
        answer = self.admin("GET /api/events cookie after logout", "GET", "/api/events",
                            cookie=cookie, auth=False, group=group, expect={401})
        if answer.status == 200:
            self.findings.append("a session cookie still opens /api/events after logout")
        self.admin("POST /api/replay cookie+csrf after logout", "POST", "/api/replay",
                   [("Content-Type", "application/json"), ("X-CSRF-Token", csrf)],
                   b'{"dead": true, "mapping": "none"}', cookie=cookie, auth=False,
                   group=group, expect={401, 403})
        # Open redirects after login.
        for target in ("//evil.example/", "https://evil.example/", "/admin@evil.example",
                       "/admin/..//evil.example", "/admin\\..\\..\\evil.example",
                       "/\\evil.example", "/admin%2F%2Fevil.example", "/admin\r\nX-Injected: 1",
                       "/adminevil"):
            form = urllib.parse.urlencode({"token": token, "next": target}).encode()
            answer = self.admin(f"login next={target[:30]!r}", "POST", "/admin/login",
                                [("Content-Type", "application/x-www-form-urlencoded")], form,
                                auth=False, group=group, expect={302, 303})
            location = answer.header("location") or ""
            landed = urllib.parse.urlsplit(urllib.parse.urljoin(
                f"http://127.0.0.1:{self.port}/admin/login", location.replace("\\", "/")))
            if landed.netloc != f"127.0.0.1:{self.port}" or location.startswith(("//", "/\\")):
                self.findings.append(f"login with next={target!r} redirects to {location!r}")
            if answer.header("x-injected"):
                self.findings.append(f"login next={target!r} injected a header")
            cookie2 = (answer.header("set-cookie") or "").split(";")[0]
            if cookie2:  # log out again: do not leave sessions behind
                page = self.admin("GET /admin/ (for csrf)", "GET", "/admin/", cookie=cookie2,
                                  auth=False, group=group, expect={200})
                match = re.search(rb'name="csrf" value="([^"]+)"', page.body)
                self.admin("POST logout", "POST", "/admin/logout",
                           [("Content-Type", "application/x-www-form-urlencoded")],
                           urllib.parse.urlencode({"csrf": match.group(1).decode() if match
                                                   else ""}).encode(), cookie=cookie2,
                           auth=False, group=group, expect={302, 303})

    def run_brute_force(self) -> None:
        group = "admin-brute-force"
        token = self.secrets["RELAY_ADMIN_TOKEN"]
        outcomes = collections.Counter()
        for i in range(30):
            guess = token[:-1] + chr(ord("a") + i % 26) if i % 2 else f"guess{i:035d}"
            if guess == token:
                guess += "x"
            form = urllib.parse.urlencode({"token": guess}).encode()
            answer = self.admin(f"wrong login {i}", "POST", "/admin/login",
                                [("Content-Type", "application/x-www-form-urlencoded"),
                                 ("X-Forwarded-For", f"10.0.{i}.1")], form, auth=False,
                                group=group, expect={200, 429})
            outcomes[answer.status] += 1
            if answer.status in (302, 303):
                self.findings.append(f"a wrong admin token logged in: {guess!r}")
        for i in range(10):
            answer = self.send(group, f"wrong bearer {i}", "-", http(
                self.port, "GET", "/api/events", [("Authorization", f"Bearer wrong{i}"),
                                                  ("X-Forwarded-For", f"10.1.{i}.1")]),
                expect={401, 429})
            outcomes[answer.status] += 1
        allowed = 5 * WEB_WORKERS
        checked = sum(n for s, n in outcomes.items() if s != 429)
        self.brute = (outcomes, allowed)
        if checked > allowed:
            self.findings.append(f"admin token brute force: {checked} of 40 wrong tokens were "
                                 f"checked (at most {allowed} expected: 5 a minute per web "
                                 f"process); answers {dict(outcomes)}")
        form = urllib.parse.urlencode({"token": token}).encode()
        answer = self.admin("right token while limited", "POST", "/admin/login",
                            [("Content-Type", "application/x-www-form-urlencoded")], form,
                            auth=False, group=group, expect={429, 302, 303})
        self.locked_out_status = answer.status

    # --- slow clients ------------------------------------------------------------------------

    def run_slowloris(self, connections: int = 48) -> None:
        """Connections that send part of a request head and then trickle: does the relay
        still answer others?"""
        socks = []
        for _ in range(connections):
            try:
                sock = socket.create_connection(("127.0.0.1", self.port), timeout=2)
                sock.sendall(b"POST /hooks/typeform-leads HTTP/1.1\r\nHost: 127.0.0.1\r\nX-a: ")
                socks.append(sock)
            except OSError:
                break
        time.sleep(1.0)
        probe = self.send("slowloris", f"healthz-while-{len(socks)}-partial-heads-held", "-",
                          http(self.port, "GET", "/healthz"), expect={200}, timeout=5)
        genuine_phone, tag = self.phone(), self.tag()
        raw, ctype, headers = self.body("typeform-leads", genuine_phone, tag)
        webhook = self.post("slowloris", f"genuine-webhook-while-{len(socks)}-held",
                            "typeform-leads", raw, ctype, headers, may_store=True,
                            expect=STORED, tag=tag, timeout=5)
        self.genuine_by_phone[genuine_phone.lstrip("+")] += 1
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.close()
        time.sleep(0.5)
        after = self.send("slowloris", "healthz-after-release", "-",
                          http(self.port, "GET", "/healthz"), expect={200}, timeout=5)
        self.slowloris = (len(socks), probe.status, probe.seconds, webhook.status,
                          after.status)

    # --- the database ------------------------------------------------------------------------

    def db_rows(self, sql: str, args: tuple = ()) -> list[tuple]:
        db = sqlite3.connect(f"file:{self.folder / 'relay.db'}?mode=ro", uri=True, timeout=10)
        try:
            return db.execute(sql, args).fetchall()
        finally:
            db.close()

    def drain(self, relay: subprocess.Popen, timeout: float) -> None:
        """Wait until the worker has looked up and delivered everything (or the relay is
        gone)."""
        try:
            wait_until(lambda: relay.poll() is not None or not self.db_rows(
                "SELECT 1 FROM deliveries WHERE status = 'pending' UNION ALL "
                "SELECT 1 FROM lookups WHERE status = 'pending' LIMIT 1"),
                "the deliveries", timeout=timeout, every=0.25)
        except SystemExit as exc:
            self.observations.append(str(exc))

    def db_size(self) -> int:
        return sum(p.stat().st_size for p in self.folder.glob("relay.db*") if p.is_file())


# --- the verdict ---------------------------------------------------------------------------


def analyse(attack: Attack, log_text: str, standin: dict, relay_alive: bool,
            size_before: int, size_after: int, seconds: float) -> int:
    records = attack.records
    failures: list[str] = []
    print(f"attack.py seed={attack.seed}: {len(records)} requests in {seconds:.1f} s against "
          f"`relay serve` on 127.0.0.1:{attack.port}")
    print(f"mappings ({len(attack.maps)}): {', '.join(attack.repo_names)} from mappings/; "
          f"{', '.join(n for n in attack.maps if n not in attack.repo_names)} added by "
          "attack.py to the temporary copy")
    presets = sorted({m.preset.name for m in attack.maps.values()})
    print(f"presets covered: {', '.join(presets)}")

    # Status codes per group.
    groups: dict[str, collections.Counter] = {}
    for r in records:
        groups.setdefault(r.group, collections.Counter())[str(r.status)] += 1
    columns = sorted({s for c in groups.values() for s in c},
                     key=lambda s: (not s.isdigit(), s))
    print("\nanswers per case group:")
    print(f"  {'group':22} {'n':>5} " + " ".join(f"{c:>7}" for c in columns))
    for group, counts in groups.items():
        print(f"  {group:22} {sum(counts.values()):5d} "
              + " ".join(f"{counts.get(c, 0) or '':>7}" for c in columns))

    # 5xx and hangs.
    five = [r for r in records if isinstance(r.status, int) and r.status >= 500]
    print(f"\n5xx answers: {len(five) or 'none'}")
    for r in five:
        print(f"  #{r.n} {r.group}/{r.case} mapping={r.mapping} -> {r.status}")
    if five:
        failures.append(f"{len(five)} 5xx answer(s)")
    hangs = [r for r in records if r.status == "timeout" and not r.may_hang]
    held = [r for r in records if r.status == "timeout" and r.may_hang]
    print(f"timeouts where an answer was due: {len(hangs) or 'none'}")
    for r in hangs:
        print(f"  #{r.n} {r.group}/{r.case} mapping={r.mapping} (no answer in {r.seconds:.1f} s)")
    if hangs:
        failures.append(f"{len(hangs)} request(s) without an answer (hang)")
    for r in held:
        print(f"  (held on purpose) #{r.n} {r.group}/{r.case}: the server still waited after "
              f"{r.seconds:.1f} s (RELAY_REQUEST_TIMEOUT=3 here)")
    if not relay_alive:
        failures.append("`relay serve` exited during the run")
        print("`relay serve` EXITED during the run")

    # Answers outside what was expected (not failures by themselves).
    odd = [r for r in records if r.expect is not None and r.status not in r.expect
           and not (isinstance(r.status, int) and r.status >= 500) and r.status != "timeout"]
    print(f"\nanswers other than expected (listed for review): {len(odd) or 'none'}")
    for r in odd[:60]:
        detail = ""
        if isinstance(r.answer, dict):
            detail = json.dumps({k: r.answer[k] for k in ("status", "error") if k in r.answer})
        print(f"  #{r.n} {r.group}/{r.case} mapping={r.mapping}: {r.status} (expected "
              f"{sorted(map(str, r.expect))}) {detail[:120]}")
    if len(odd) > 60:
        print(f"  ... and {len(odd) - 60} more")
    for r in records:
        for note in r.notes:
            print(f"  note #{r.n} {r.group}/{r.case} mapping={r.mapping}: {note}")

    # What was stored, traced back to the request that stored it.
    events = attack.db_rows("SELECT id, mapping, status, body, headers, query, errors, note "
                            "FROM events ORDER BY id")
    deliveries = attack.db_rows("SELECT id, event_id, mapping, phone, status, attributes "
                                "FROM deliveries ORDER BY id")
    by_event_id: dict[int, Record] = {}
    for r in records:
        if (isinstance(r.answer, dict) and r.answer.get("status") in (
                "accepted", "skipped", "failed") and isinstance(r.answer.get("event_id"), int)):
            by_event_id.setdefault(r.answer["event_id"], r)
    by_tag: dict[str, list[Record]] = collections.defaultdict(list)
    for r in records:
        if r.tag:
            by_tag[r.tag].append(r)
    tag_re = re.compile(rb"atk" + attack.salt.encode() + rb"n\d{5}")
    bad_rows: list[str] = []
    attributed: dict[int, Record] = {}
    for event_id, mapping, status, body, *_ in events:
        record = by_event_id.get(event_id)
        if record is None:
            match = tag_re.search(body or b"")
            candidates = by_tag.get(match.group(0).decode(), []) if match else []
            ok = [r for r in candidates if r.may_store and r.status in (200, 202, 422)]
            record = ok[0] if ok else (candidates[0] if candidates else None)
        if record is None:
            bad_rows.append(f"event {event_id} ({mapping}, {status}): stored by no request "
                            "this script can trace")
            continue
        attributed[event_id] = record
        if record.may_store is False:
            bad_rows.append(f"event {event_id} ({mapping}, {status}) stored by #{record.n} "
                            f"{record.group}/{record.case}, which must store nothing")
    expected_events = sum(1 for r in records if r.may_store is True and (
        (isinstance(r.answer, dict) and r.answer.get("status") in ("accepted", "skipped",
                                                                   "failed"))
        or (r.mapping in attack.maps and attack.maps[r.mapping].preset.name == "salesforce"
            and r.status == 200)))
    either = sum(1 for r in attributed.values() if r.may_store == "either")
    forged_deliveries = [d for d in deliveries if d[3] == FORGED_DIGITS]
    stored_forged_bodies = [e for e in events if FORGED_PHONE.encode() in (e[3] or b"")
                            or FORGED_DIGITS.encode() in (e[3] or b"")]
    passwd = [e for e in events if b"root:x:0:0" in (e[3] or b"")]
    print(f"\ndatabase: {len(events)} events, {len(deliveries)} deliveries stored")
    print(f"  events the genuine requests should have stored: {expected_events} "
          f"(+{either} from cases where storing is harmless); "
          f"events traced to genuine requests: "
          f"{sum(1 for r in attributed.values() if r.may_store)}")
    print(f"  deliveries: {collections.Counter(d[4] for d in deliveries)}; "
          f"deliveries to the forged phone {FORGED_PHONE}: {len(forged_deliveries)}")
    print(f"  events whose body carries the forged phone: {len(stored_forged_bodies)}")
    print(f"  stored rows that should not exist: {len(bad_rows) or 'none'}")
    for line in bad_rows:
        print(f"    {line}")
    if bad_rows:
        failures.append(f"{len(bad_rows)} stored event(s) that should not exist")
    if forged_deliveries:
        failures.append(f"{len(forged_deliveries)} delivery row(s) for the forged phone")
    if passwd:
        failures.append("an event body holds /etc/passwd content")
        print("  an event body holds /etc/passwd content!")
    pending = [d for d in deliveries if d[4] == "pending"]
    if pending:
        print(f"  still pending at the end: {len(pending)}")
        attack.observations.append(f"{len(pending)} deliveries still pending at the end")

    # Refusal counts.
    refusals = attack.db_rows("SELECT mapping, minute, kind, count, sample FROM refusal_counts "
                              "ORDER BY mapping, minute, kind")
    refused_401 = sum(1 for r in records if r.status == 401 and r.group not in (
        "admin-no-token", "admin-brute-force", "admin-session", "admin-api"))
    print(f"\nrefusal_counts: {len(refusals)} rows counting {sum(r[3] for r in refusals)} "
          f"refusals ({refused_401} answers were 401 from /hooks; counts of the last seconds "
          "may still be in a web process's memory)")
    print(f"  {'mapping':24} {'minute':>10} {'count':>5}  kind")
    for mapping, minute, kind, count, _sample in refusals:
        print(f"  {mapping:24} {minute:10d} {count:5d}  {kind[:80]}")
    stored_bytes = sum(len(e[3] or b"") for e in events)
    print(f"\ndatabase files (relay.db + -wal + -shm): {size_before:,} bytes after start-up, "
          f"{size_after:,} at the end: grew {size_after - size_before:,} bytes, of which "
          f"{stored_bytes:,} are the bodies of the stored (genuine) events")
    parts = {p.name: p.stat().st_size for p in attack.folder.glob("relay.db*") if p.is_file()}
    print(f"  after the relay stopped: {', '.join(f'{k} {v:,}' for k, v in parts.items())}")
    if hasattr(attack, "forged_growth"):
        count, grown, rows = attack.forged_growth
        print(f"  during {count} forged-only requests (methods, fuzz): grew {grown:,} bytes, "
              f"{rows} refusal_counts row(s) added")

    # Secrets.
    values = attack.secret_values()
    where: list[str] = list(attack.leaks)
    for event_id, mapping, _status, body, headers, query, errors, note in events:
        text = b"".join(_b(x) if isinstance(x, str | bytes) else b"" for x in (
            body, headers, query, errors, note))
        for label, value in values:
            if value in text:
                where.append(f"events row {event_id} ({mapping}) contains {label}")
    files = b"".join(p.read_bytes() for p in attack.folder.glob("relay.db*") if p.is_file())
    for label, value in values:
        if value in files:
            where.append(f"the database files contain {label}")
        if value.decode() in log_text:
            where.append(f"the relay's stderr log contains {label}")
    print(f"\nsecrets checked ({len(values)}: {', '.join(label for label, _ in values)}) in the "
          f"events rows, the whole database files, the relay's stderr log "
          f"({len(log_text):,} bytes) and every response: "
          f"{'none found' if not where else f'{len(where)} LEAK(S)'}")
    for line in where[:40]:
        print(f"  {line}")
    if where:
        failures.append(f"{len(where)} secret leak(s)")
    injected = [line for line in log_text.splitlines() if line.startswith("INJECTED")]
    blocks: list[list[str]] = []
    current: list[str] | None = None
    for text in log_text.splitlines():
        if text.startswith("Traceback"):
            current = [text]
            blocks.append(current)
        elif current is not None and not re.match(r"\d{4}-\d\d-\d\d |\[\d{4}-", text):
            current.append(text)
        else:
            current = None
    largest = max((len(b) for b in blocks), default=0)
    print(f"log lines forged through the URL: {len(injected) or 'none'}; tracebacks in the "
          f"log: {len(blocks)} ({sum(len(b) for b in blocks):,} lines, the largest "
          f"{largest:,} lines; the whole log {log_text.count(chr(10)):,} lines)")
    if largest > 500:
        attack.observations.append(
            f"one request can write a {largest:,}-line traceback to the log (deep-attribute "
            "webhooks: RecursionError in relay/history.py storable)")
    if injected:
        failures.append("log injection")
        for line in injected[:5]:
            print(f"  {line[:160]}")
    folder_in_answers = [r for r in records if str(attack.folder).encode() in (
        json.dumps(r.answer).encode() if r.answer is not None else b"")]
    if folder_in_answers:
        first = folder_in_answers[0]
        attack.observations.append(
            f"{len(folder_in_answers)} answers name the server's absolute mappings path, e.g. "
            f"#{first.n} {first.group}/{first.case} ({first.mapping}) {first.status}: "
            f"{str(first.answer.get('hint', ''))[:110]!r}")

    # Engati.
    markers = standin.get("markers", {})
    forged_calls = markers.get(FORGED_DIGITS, 0)
    repeated = {p: c for p, c in markers.items() if c > 1}
    replayed = {p: c for p, c in markers.items() if p in attack.replay_phones and c > 1}
    print(f"\nEngati stand-in: {standin.get('calls', 0)} calls for {len(markers)} phone "
          f"numbers; calls for the forged phone {FORGED_DIGITS}: {forged_calls}; phones "
          f"called more than once: {len(repeated) or 'none'}")
    for phone, count in sorted(repeated.items()):
        why = attack.replay_phones.get(phone, "")
        print(f"  {phone}: {count} calls {('(' + why + ')') if why else ''}")
    if forged_calls:
        failures.append(f"{forged_calls} Engati call(s) for the forged phone")
    if repeated:
        failures.append(f"{len(repeated)} phone(s) called more than once "
                        f"({len(replayed)} of them replay-only phones)")
    delivered = collections.Counter(d[3] for d in deliveries if d[4] == "delivered")
    uncalled = [p for p, c in delivered.items() if markers.get(p, 0) < 1]
    if uncalled:
        print(f"  delivered deliveries the stand-in never saw: {len(uncalled)}")

    # The unverified endpoint's cap: RELAY_UNVERIFIED_LIMIT a minute per web process.
    unverified = [r for r in records if r.mapping == "attack-unverified"]
    if unverified:
        took = [r for r in unverified if r.status in STORED]
        minutes = {int(r.at // 60) for r in unverified}
        cap = UNVERIFIED_LIMIT * WEB_WORKERS * len(minutes)
        print(f"\nunverified endpoint: {len(unverified)} posts over {len(minutes)} clock "
              f"minute(s), {len(took)} taken, "
              f"{sum(1 for r in unverified if r.status == 429)} answered 429 (cap "
              f"{UNVERIFIED_LIMIT}/minute per web process: at most {cap})")
        if len(took) > cap:
            failures.append(f"the unverified endpoint took {len(took)} webhooks (cap {cap})")

    # Admin specifics.
    if hasattr(attack, "metrics_labels"):
        print(f"\n/metrics: {attack.metrics_labels[0]} mapping label values, "
              f"{attack.metrics_labels[1]:,} bytes after the hostile names")
    if hasattr(attack, "brute"):
        outcomes, allowed = attack.brute
        print(f"\nadmin brute force: 30 wrong logins + 10 wrong bearer tokens (rotating "
              f"X-Forwarded-For): {dict(outcomes)}; at most {allowed} may be checked; the "
              f"right token just after: {attack.locked_out_status}")
    if hasattr(attack, "slowloris"):
        held_n, probe, probe_s, webhook, after = attack.slowloris
        print(f"slow clients: {held_n} connections holding a partial request head; /healthz "
              f"meanwhile: {probe} ({probe_s:.1f} s), a genuine webhook: {webhook}; after "
              f"they closed: {after}")
        if probe != 200 or webhook not in (200, 202):
            failures.append(f"{held_n} slow connections stop the relay answering (hang)")

    # The brief's cases, one line each.
    def statuses(group: str, case: str | None = None, mapping: str | None = None) -> list:
        return [r.status for r in records if r.group == group
                and (case is None or r.case == case or r.case.startswith(case))
                and (mapping is None or r.mapping == mapping)]

    def line(ok: bool, text: str, got: Any) -> None:
        print(f"  [{'ok' if ok else 'NO'}] {text}: {got}")

    print("\nchecks:")
    for group, text in [("forged", "forged and missing signatures refused"),
                        ("fuzz", "fuzzed single mutations of signed requests refused")]:
        forged = [r for r in records if r.group == group and r.may_store is False]
        got = collections.Counter(r.status for r in forged)
        line(all(r.status in REFUSED for r in forged), text, dict(got))
    got = collections.Counter(s for r in records if r.group == "timestamp" and not r.may_store
                              for s in [r.status])
    line(set(got) <= {401}, "genuine signatures over stale/future/nan/inf/huge/negative "
         "timestamps refused", dict(got))
    got = collections.Counter(statuses("replay", "exact-replay")
                              + statuses("replay", "svix-exact-replay"))
    line(set(got) <= {200, 401}, "exact replays answered as duplicates", dict(got))
    got = collections.Counter(statuses("content-type", "type="))
    line(set(got) <= {400, 415}, "valid signature, a content type the sender does not post",
         dict(got))
    for mapping in [n for n, m in attack.maps.items() if m.preset.name == "hubspot"]:
        legacy = attack.maps[mapping].legacy_signatures
        got = statuses("hubspot-legacy", "v1-genuine", mapping)[:1]
        line((got == [401]) != legacy, f"HubSpot v1 signature on {mapping} "
             f"(legacy_signatures: {str(legacy).lower()}) "
             f"{'accepted' if legacy else 'refused'}", got)
        got = statuses("hubspot-legacy", "v1-length-extension", mapping)
        line(all(st in (400, 401, 415) for st in got), f"v1 length extension on {mapping} "
             "refused", got)
    got = {c: statuses("salesforce", c) for c in ("101-notifications", "wrong-org",
                                                   "org-repeated-wrong-first", "org-with-child",
                                                   "internal-entity", "external-entity-file",
                                                   "billion-laughs", "deep-xml-10000")}
    line(all(st and st[0] in REFUSED for st in got.values()), "Salesforce: 101 notifications, "
         "wrong/repeated/child OrganizationId, entities, DTD, deep XML refused",
         {k: v[0] if v else None for k, v in got.items()})
    got = statuses("genuine", "salesforce-100-notifications")
    line(got == [200], "Salesforce: 100 notifications accepted", got)
    for case in ("deep-json-array-10000", "deep-json-object-10000", "deep-xml-10000",
                 "bad-utf8", "truncated-json", "nul-bytes-raw", "number-1e400",
                 "int-100000-digits"):
        got = collections.Counter(r.status for r in records if r.group == "body"
                                  and r.case.endswith(case))
        line(set(got) <= {400, 401, 413, 415, 429}, f"body {case}", dict(got))
    got = collections.Counter(r.status for r in records if r.group == "body"
                              and r.case.startswith("huge"))
    line(set(got) <= {413, 400, "closed"}, "bodies over RELAY_MAX_BODY", dict(got))
    got = collections.Counter(statuses("framing"))
    line(not any(isinstance(st, int) and st >= 500 for st in got), "lying Content-Length, "
         "chunked variants, smuggling headers: no 5xx", dict(got))
    got = collections.Counter(statuses("names"))
    line(set(got) <= {400, 401, 404, 414, "closed"}, "hostile mapping names", dict(got))
    got = collections.Counter(statuses("headers"))
    line(not any(isinstance(st, int) and st >= 500 for st in got), "header floods",
         dict(got))
    got = collections.Counter(statuses("methods"))
    # meta-lead-ads also serves Meta's GET check: a GET without its token is 400 or 403.
    allow = all(r.allow_header == ", ".join(attack.maps[r.mapping].preset.methods)
                for r in records if r.group == "methods" and r.status == 405)
    got_get = collections.Counter(r.status for r in records if r.group == "methods"
                                  and "GET" in attack.maps[r.mapping].preset.methods
                                  and r.case in ("GET", "HEAD"))
    got = got - got_get
    line(set(got) <= {400, 405} and set(got_get) <= {400, 403, 405} and allow,
         "non-POST methods (405 with Allow: POST, or GET, POST where Meta's check is served)",
         dict(got))
    got = collections.Counter(r.status for r in records if r.group.startswith("admin-api"))
    line(not any(isinstance(st, int) and st >= 500 for st in got),
         "admin API hostile parameters with the token", dict(got))
    got = collections.Counter(statuses("admin-no-token"))
    line(set(got) <= {302, 401, 404}, "admin surface without a token", dict(got))
    got = statuses("admin-session", "GET /admin/ cookie after logout") + statuses(
        "admin-session", "GET /api/events cookie after logout")
    line(got == [302, 401], "a cookie replayed after logout", got)
    if hasattr(attack, "brute"):
        outcomes, allowed = attack.brute
        line(sum(n for st, n in outcomes.items() if st != 429) <= allowed,
             "login brute force limited", dict(outcomes))
    for case in ("replay-new-id-header", "replay-without-id-header",
                 "svix-replay-plus-unsigned-webhook-id"):
        got = {r.mapping: r.status for r in records if r.group == "replay" and r.case == case}
        line(all(st not in (202,) for st in got.values()),
             f"{case}: a captured genuine request replayed is no new event", got)
    got = collections.Counter(statuses("stored-hostile"))
    line(not any(isinstance(st, int) and st >= 500 for st in got), "webhooks with deep, "
         "surrogate, NUL, huge attribute values (genuine or unverified): no 5xx", dict(got))
    got = collections.Counter(statuses("admin-hostile-events"))
    line(not any(isinstance(st, int) and st >= 500 for st in got),
         "every stored hostile event opens in the console and the API", dict(got))
    line(forged_calls == 0 and not forged_deliveries,
         "no delivery and no Engati call for the forged phone",
         {"deliveries": len(forged_deliveries), "calls": forged_calls})
    line(not where, "no secret in events, database files, log or answers", len(where))
    if hasattr(attack, "slowloris"):
        line(attack.slowloris[1] == 200 and attack.slowloris[3] in (200, 202),
             f"{attack.slowloris[0]} slow clients holding partial heads do not stop answers",
             {"healthz": attack.slowloris[1], "webhook": attack.slowloris[3]})
    replayed_api = getattr(attack, "api_replayed", [])
    line(all(markers.get(p, 0) <= 1 for _, p in replayed_api),
         "API replay of a delivered event makes no second Engati call",
         {e: markers.get(p, 0) for e, p in replayed_api})

    print("\nfindings:")
    for line in attack.findings:
        print(f"  - {line}")
        failures.append(line)
    if not attack.findings:
        print("  (none beyond the failures below)")
    for line in attack.observations:
        print(f"  observation: {line}")
    print(f"\nverdict: {'FAIL: ' + '; '.join(failures) if failures else 'PASS'}")
    return 1 if failures else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--fuzz", type=int, default=200, help="fuzzed mutations (default 200)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    started = time.monotonic()
    folder = Path(tempfile.mkdtemp(prefix="relay-attack-"))
    relay = standin = graph = None
    try:
        shutil.copytree(ROOT / "mappings", folder / "mappings")
        repo_names = sorted(p.stem for p in (folder / "mappings").iterdir()
                            if p.suffix in (".yaml", ".yml"))
        for name, text in EXTRA_MAPPINGS.items():
            (folder / "mappings" / f"{name}.yaml").write_text(text)
        standin_port, port, graph_port = free_port(), free_port(), free_port()
        attack = Attack(args.seed, folder, port, standin_port)
        attack.repo_names = repo_names
        # Every ${VAR} a secret names, set to a known random value.
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("RELAY_", "ENGATI_", "DATABASE_URL", "PORT"))}
        for file in sorted((folder / "mappings").glob("*.y*ml")):
            text = file.read_text()
            source = re.search(r"^source:\s*([\w-]+)", text, re.M)
            for line in text.splitlines():
                # secret:, verify_token: and lookup's token: each a credential to keep out
                if re.match(r"\s*(secret|verify_token|token):", line):
                    for var in re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", line):
                        # HTTP basic needs user:password, whatever its variable is called
                        kind = ("basic" if re.search(r"type:\s*basic", text)
                                else source.group(1) if source else "generic")
                        attack.secrets.setdefault(var, attack.secret_for(var, kind))
        attack.secrets["ENGATI_API_KEY"] = "atk-engati-key-" + attack.rng.randbytes(12).hex()
        attack.secrets["RELAY_ADMIN_TOKEN"] = ("atkadmin" + attack.rng.randbytes(16).hex())[:40]
        env.update({k: v for k, v in attack.secrets.items()})
        env.update({
            "DATABASE_URL": f"sqlite:///{folder}/relay.db",
            "RELAY_MAPPINGS": str(folder / "mappings"),
            "ENGATI_BASE_URL": f"http://127.0.0.1:{standin_port}",
            "ENGATI_CUSTOMER_ID": "123456", "ENGATI_BOT_KEY": "0a1b2c3d4e5f6a7b",
            "RELAY_UNVERIFIED_LIMIT": str(UNVERIFIED_LIMIT),
            "RELAY_REQUEST_TIMEOUT": "3",
            "RELAY_RETRY_BASE": "0.5",
            "META_GRAPH_URL": f"http://127.0.0.1:{graph_port}",
        })
        for file in sorted((folder / "mappings").glob("*.y*ml")):
            attack.maps[file.stem] = load_endpoint(file, env)
        standin = start_standin(standin_port, count_by="user.phone_no")
        # `relay sandbox` answers the Graph API reads of meta-lead-ads' lookups.
        graph = subprocess.Popen([sys.executable, "-m", "relay", "sandbox", "--port",
                                  str(graph_port)], env=env, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
        wait_until(lambda: answers(f"http://127.0.0.1:{graph_port}/_sandbox/lookups"),
                   "the Graph API stand-in")
        log_path = folder / "relay.log"
        relay = subprocess.Popen([sys.executable, "-m", "relay", "serve", "--port", str(port)],
                                 env=env, stdout=subprocess.DEVNULL, stderr=log_path.open("wb"))
        wait_until(lambda: answers(f"http://127.0.0.1:{port}/readyz"), "the relay", 60)
        size_before = attack.db_size()

        try:
            attack.run_genuine()
            attack.run_replays()
            attack.run_forged()
            attack.run_content_types()
            attack.run_hostile_stored()
            attack.run_bodies()
            attack.run_names()
            attack.run_headers()
            # Growth of the database under forged requests alone (methods and fuzz store
            # nothing): measured once the worker has nothing left to write.
            attack.drain(relay, 30)
            time.sleep(1.5)
            forged_from, rows_from = attack.db_size(), attack.db_rows(
                "SELECT count(*) FROM refusal_counts")[0][0]
            first = len(attack.records)
            attack.run_methods()
            attack.run_fuzz(args.fuzz)
            time.sleep(5.5)  # refusal counts are written within 5 s (or with the next batch)
            attack.forged_growth = (len(attack.records) - first,
                                    attack.db_size() - forged_from,
                                    attack.db_rows("SELECT count(*) FROM refusal_counts")[0][0]
                                    - rows_from)
            if "attack-unverified" in attack.maps:
                attack.run_unverified_flood()
            attack.drain(relay, 30)  # the console looks at delivered events
            attack.run_admin()
            attack.run_replay_api()
            attack.run_sessions()
            attack.run_brute_force()
            attack.run_slowloris()
            # Refusal counts are written with the next batch or after 5 s: a chance to.
            time.sleep(5.5)
            for _ in range(6):
                raw, ctype, _ = attack.body("typeform-leads", FORGED_PHONE, attack.tag())
                attack.post("flush", "forged-after-5s", "typeform-leads", raw, ctype,
                            signed=False, expect={401})
            time.sleep(1.5)
            attack.drain(relay, 15)
        except Hung as exc:
            attack.findings.append(f"the relay hung: {exc}; the remaining attacks were skipped")
        size_after = attack.db_size()
        relay_alive = relay.poll() is None
        standin_stats = stats(standin_port)
        stop(relay)
        relay = None
        log_text = log_path.read_text(errors="replace")
        with (folder / "records.jsonl").open("w") as out:
            for r in attack.records:
                out.write(json.dumps({"n": r.n, "group": r.group, "case": r.case,
                                      "mapping": r.mapping, "status": r.status,
                                      "may_store": r.may_store, "answer": r.answer,
                                      "seconds": round(r.seconds, 4), "notes": r.notes},
                                     default=str) + "\n")
        code = analyse(attack, log_text, standin_stats, relay_alive, size_before, size_after,
                       time.monotonic() - started)
    finally:
        stop(relay, standin, graph)
        if args.keep:
            print(f"(kept {folder})")
        else:
            shutil.rmtree(folder, ignore_errors=True)
    sys.exit(code)


if __name__ == "__main__":
    main()
