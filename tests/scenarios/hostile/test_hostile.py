"""Hostile input: none of it may produce a 5xx, a stored event where none belongs, or a hang.

In-process through the Flask app for the bodies and names, property-based with hypothesis;
over real sockets to gunicorn for what only a real server sees (lying Content-Length,
chunked bodies, header floods).
"""

from __future__ import annotations

import json
import socket
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relay.config import Settings
from relay.mapping import evaluate
from relay.sources import load_endpoint
from relay.sources.registry import Registry
from relay.store import open_store
from relay.web.app import create_app
from tests.conftest import MAPPINGS, fresh_postgres, postgres_reason
from tests.support.live import Process, answers, free_port, wait_for

pytestmark = pytest.mark.reliability

LEADS = """
source: generic
id: body.id
phone: {path: body.phone, region: IN}
attributes:
  name: body.name
  email: {path: body.email, required: true}
flows: [{when: "body.vip == `true`", flow_key: VIP}, {flow_key: REST}]
"""
SIGNED = "source: typeform\nsecret: tf-secret\nphone: body.phone\nflows: [{flow_key: X}]\n"
SALESFORCE = ("source: salesforce\norganization_id: 00D5g000004XyZ1EAC\nphone: item.sObject.Phone"
              "\nflows: [{flow_key: X}]\n")
ACCEPTABLE = {200, 202, 400, 401, 404, 405, 413, 415, 422}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def relay(request, tmp_path_factory):
    """The app in-process, on SQLite and on PostgreSQL (which refuses NUL characters)."""
    root = tmp_path_factory.mktemp("hostile")
    for name, text in (("leads", LEADS), ("signed", SIGNED), ("salesforce", SALESFORCE)):
        (root / f"{name}.yaml").write_text(text)
    url = f"sqlite:///{root / 'relay.db'}"
    if request.param == "postgresql":
        if reason := postgres_reason():
            pytest.skip(reason)
        url = fresh_postgres("relay_hostile")
    store = open_store(url)
    store.upgrade()
    registry = Registry(root)
    registry.load()
    app = create_app(Settings(database_url=url, mappings=str(root), max_body=65536,
                              unverified_limit=1_000_000),  # "leads" verifies nothing
                     store=store, registry=registry)
    yield app.test_client(), store
    store.dispose()


def stored(store) -> int:
    return len(store.events(limit=100_000))


def check(response, store, before: int) -> None:
    """Never a 5xx; only 2xx and 422 (kept for replay) may store an event."""
    assert response.status_code in ACCEPTABLE, (response.status_code, response.data[:300])
    grew = stored(store) - before
    assert grew == (1 if response.status_code in (202, 422) or (
        response.status_code == 200 and response.get_json().get("status") == "skipped") else 0)


BODIES = {
    "deeply nested JSON": b"[" * 100_000 + b"]" * 100_000,
    "a huge integer": b'{"phone": ' + b"9" * 5000 + b"}",
    "a huge float": b'{"phone": 1e999}',
    "NaN": b'{"phone": NaN}',
    "invalid UTF-8": b'{"phone": "\xff\xfe"}',
    "NUL characters": b'{"id": "a\\u0000b", "phone": "+919812345678", "email": "x\\u0000@y"}',
    "truncated JSON": b'{"phone": "+91',
    "a JSON string": b'"hello"',
    "a JSON list": b"[1, 2, 3]",
    "empty": b"",
}


@pytest.mark.parametrize("name", list(BODIES))
def test_odd_json_bodies(relay, name):
    """Malformed, deep, huge or odd JSON: an answer below 500, and stored only if mappable."""
    client, store = relay
    before = stored(store)
    response = client.post("/hooks/leads", data=BODIES[name],
                           headers={"Content-Type": "application/json"})
    check(response, store, before)


@pytest.mark.parametrize("content_type", ["text/csv", "application/octet-stream", "image/png",
                                          "multipart/form-data", "text/xml", "application/json;;",
                                          "x" * 5000])
def test_wrong_content_types(relay, content_type):
    """A body the relay cannot read is 4xx, not 500."""
    client, store = relay
    before = stored(store)
    check(client.post("/hooks/leads", data=b"\x00\x01garbage",
                      headers={"Content-Type": content_type}), store, before)


def test_xml_bombs_and_external_entities(relay):
    """Billion laughs and external entities are refused before they expand."""
    client, store = relay
    laughs = (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
              + b"".join(b'<!ENTITY lol%d "%s">' % (i, b"&lol%d;" % (i - 1) * 10 if i else b"&lol;"
                                                    * 10) for i in range(1, 9))
              + b"]><lolz>&lol8;</lolz>")
    external = (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
                b"<x>&e;</x>")
    for body in (laughs, external):
        before = stored(store)
        response = client.post("/hooks/salesforce", data=body, headers={"Content-Type": "text/xml"})
        check(response, store, before)
        assert b"root:" not in response.data


def test_multipart_bomb(relay):
    """Thousands of form parts are refused, not parsed."""
    client, store = relay
    part = b'--B\r\nContent-Disposition: form-data; name="f"\r\n\r\nx\r\n'
    before = stored(store)
    response = client.post("/hooks/leads", data=part * 5000 + b"--B--\r\n",
                           headers={"Content-Type": "multipart/form-data; boundary=B"})
    check(response, store, before)


@pytest.mark.parametrize("path", ["/hooks/..", "/hooks/%2e%2e", "/hooks/%2e%2e%2fetc",
                                  "/hooks/a%00b", "/hooks/" + "a" * 5000, "/hooks/", "/hooks",
                                  "/hooks/leads/extra", "/hooks/%ff"])
def test_odd_mapping_names(relay, path):
    """Names that are no mapping get a JSON 404 (or 405), never a file or a 500."""
    client, store = relay
    before = stored(store)
    response = client.post(path, json={"phone": "+919812345678"})
    assert response.status_code in (404, 405)
    assert response.is_json
    assert stored(store) == before


@pytest.mark.parametrize("signature", ["", "sha256=", "sha256=" + "A" * 10_000, "md5=abc",
                                       "sha256=not base64!", "\u00e9\u00e9"])
def test_forged_and_malformed_signatures(relay, signature):
    """Any bad signature is a 401 and nothing is stored."""
    client, store = relay
    before = stored(store)
    response = client.post("/hooks/signed", json={"phone": "+919812345678"},
                           headers={"Typeform-Signature": signature})
    assert response.status_code == 401
    assert stored(store) == before


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(["phone", "id", "name", "email", "vip", "x"]) | st.text(
        max_size=5), children, max_size=5),
    max_leaves=20)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode()),
       content_type=st.sampled_from(["application/json", "application/x-www-form-urlencoded",
                                     "text/plain", "text/xml", "multipart/form-data; boundary=x",
                                     ""]),
       name=st.sampled_from(["leads", "signed", "salesforce", "nope"]))
def test_inbound_endpoint_never_fails(relay, body, content_type, name):
    """Whatever is posted to whatever endpoint: an answer below 500, and consistent storage."""
    client, store = relay
    before = stored(store)
    response = client.post(f"/hooks/{name}", data=body, headers={"Content-Type": content_type})
    check(response, store, before)


EXAMPLE_MAPPINGS = [load_endpoint(path, env={}).mapping
                    for path in sorted(MAPPINGS.glob("*.yaml"))]


@settings(max_examples=300, deadline=None)
@given(mapping=st.sampled_from(EXAMPLE_MAPPINGS), body=json_values,
       headers=st.dictionaries(st.text(max_size=10), st.text(max_size=10), max_size=3),
       query=st.dictionaries(st.text(max_size=10), st.text(max_size=10), max_size=3))
def test_mapping_evaluator_never_raises(mapping, body, headers, query):
    """Every example mapping, given any JSON: a result with deliveries, errors or a skip."""
    result = evaluate(mapping, {"body": body, "headers": headers, "query": query})
    assert result.status in ("planned", "failed", "skipped")
    for delivery in result.deliveries:
        assert delivery.phone.isdigit()
        json.dumps(delivery.attributes)


@pytest.fixture(scope="module")
def gunicorn(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile-live")
    (root / "mappings").mkdir()
    (root / "mappings" / "leads.yaml").write_text(LEADS)
    port = free_port()
    env = {"DATABASE_URL": f"sqlite:///{root / 'relay.db'}",
           "RELAY_MAPPINGS": str(root / "mappings"), "RELAY_MAX_BODY": "65536",
           "RELAY_UNVERIFIED_LIMIT": "1000000"}
    upgrade = Process([sys.executable, "-m", "relay", "db", "upgrade"], env, root / "up.log")
    upgrade.process.wait(60)
    assert upgrade.stop() == 0
    web = Process([sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}",
                   "--worker-class", "relay.web_server.Worker", "--threads", "4", "--timeout", "10",
                   "relay.app:create_app()"], env, root / "web.log")
    wait_for(lambda: answers(f"http://127.0.0.1:{port}/healthz"), what="gunicorn")
    store = open_store(env["DATABASE_URL"])
    yield port, store
    store.dispose()
    assert web.stop() == 0


def raw_request(port: int, head: bytes, body: bytes = b"") -> bytes:
    """Send bytes over a socket and read the answer; a 10 s timeout fails a hang.

    A server that answers before reading everything may reset the connection: whatever
    arrived before the reset is the answer.
    """
    chunks = []
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        try:
            sock.sendall(head + body)
            sock.shutdown(socket.SHUT_WR)
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except (ConnectionResetError, BrokenPipeError):
            pass
    return b"".join(chunks)


def status_of(answer: bytes) -> int:
    """The HTTP status, or 0 when the server closed the connection without one."""
    return int(answer.split(b" ", 2)[1]) if answer else 0


POST = b"POST /hooks/leads HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"


def test_body_over_the_limit_with_a_lying_or_missing_length(gunicorn):
    """Oversized bodies get 413 whether Content-Length is honest, absent (chunked) or lying."""
    port, store = gunicorn
    big = b'{"pad": "' + b"x" * 200_000 + b'"}'
    honest = raw_request(port, POST + b"Content-Length: %d\r\n\r\n" % len(big), big)
    chunked = raw_request(port, POST + b"Transfer-Encoding: chunked\r\n\r\n",
                          b"%x\r\n%s\r\n0\r\n\r\n" % (len(big), big))
    lying = raw_request(port, POST + b"Content-Length: 10\r\n\r\n", big)
    short = raw_request(port, POST + b"Content-Length: 1000\r\n\r\n", b'{"phone": 1}')
    assert status_of(honest) == 413
    assert status_of(chunked) == 413
    assert status_of(lying) < 500  # reads 10 bytes of it (invalid JSON), or hangs up
    assert status_of(short) < 500  # the sender hung up early
    assert store.events() == []


def test_header_flood(gunicorn):
    """Thousands of headers are refused by the server, not fed to the app."""
    port, store = gunicorn
    flood = b"".join(b"X-H%d: v\r\n" % i for i in range(2000))
    answer = raw_request(port, POST + flood + b"Content-Length: 2\r\n\r\n", b"{}")
    assert status_of(answer) in (0, 400, 431)
    assert store.events() == []
