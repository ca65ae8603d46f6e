"""Capture, then draft, against a real `relay serve` (gunicorn + worker) and the Engati
sandbox: a window opened by `relay capture` keeps what is posted as samples, answered as the
sender expects and never delivered; outside a window an unknown name is 404; a drafted
mapping is written, loaded by the running relay, and a sample replays through it."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import subprocess
import sys

import httpx
import pytest
import sqlalchemy as sa

from relay.store import open_store
from relay.store.tables import capture_samples, events
from tests.scenarios.hostile.test_abuse import soap
from tests.support.live import Relay, answers, free_port, wait_for

SECRET = "capture-typeform-secret"
SIGNED = f"""
source: typeform
secret: {SECRET}
phone: body.phone
flows: [{{flow_key: SIGNEDFLOW}}]
"""
CAP = 3


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    root = tmp_path_factory.mktemp("capture")
    (root / "mappings").mkdir()
    (root / "mappings" / "signed.yaml").write_text(SIGNED)
    sandbox_port, port = free_port(), free_port()
    env = {"DATABASE_URL": f"sqlite:///{root / 'relay.db'}",
           "RELAY_MAPPINGS": str(root / "mappings"),
           "ENGATI_BASE_URL": f"http://127.0.0.1:{sandbox_port}", "ENGATI_CUSTOMER_ID": "1",
           "ENGATI_BOT_KEY": "b", "ENGATI_API_KEY": "k", "RELAY_POLL_INTERVAL": "0.05",
           "RELAY_CAPTURE_SAMPLES": str(CAP),
           # Every webhook reads the windows: each web process sees a window once it is open.
           "RELAY_CAPTURE_REFRESH": "0"}
    sandbox = Relay(["sandbox", "--port", str(sandbox_port)], env, root / "sandbox.log")
    serve = Relay(["serve", "--port", str(port)], env, root / "serve.log")
    try:
        wait_for(lambda: answers(f"http://127.0.0.1:{sandbox_port}/_sandbox/calls"),
                 what="the sandbox")
        wait_for(lambda: answers(f"http://127.0.0.1:{port}/healthz"), what="relay serve")
        yield {"base": f"http://127.0.0.1:{port}", "engati": f"http://127.0.0.1:{sandbox_port}",
               "env": env, "root": root}
    finally:
        served, _ = serve.stop(), sandbox.stop()
        assert served == 0, serve.output()[-2000:]


def relay(live, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "relay", *args], env={**os.environ,
                          **live["env"]}, capture_output=True, text=True, timeout=60)


def rows(live, table: sa.Table) -> list[dict]:
    store = open_store(live["env"]["DATABASE_URL"])
    try:
        with store.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(sa.select(table))]
    finally:
        store.dispose()


def signed(body: bytes, secret: str = SECRET) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    return {"Content-Type": "application/json",
            "Typeform-Signature": "sha256=" + base64.b64encode(digest).decode()}


def test_capture_an_unknown_name_draft_a_mapping_and_replay_the_sample(live):
    base = live["base"]
    body = json.dumps({"event": "lead.created", "lead": {"first_name": "Asha",
                       "mobile": "+91 98123 45678", "email": "asha@example.com"}}).encode()
    headers = {"Content-Type": "application/json", "Authorization": "Bearer hunter2"}
    assert httpx.post(f"{base}/hooks/newcrm", content=body, headers=headers).status_code == 404
    opened = relay(live, "capture", "newcrm", "--minutes", "5")
    assert opened.returncode == 0, opened.stderr
    assert "none is delivered" in opened.stdout
    # The window is open once `relay capture` returns: every web process reads the windows
    # for every webhook here (RELAY_CAPTURE_REFRESH=0 in `live`).
    answer = httpx.post(f"{base}/hooks/newcrm?x=1", content=body, headers=headers)
    assert answer.status_code == 202, answer.text
    assert answer.json()["status"] == "captured" and answer.json()["signature"] == "unchecked"
    sample_id = answer.json()["sample_id"]
    kept = next(r for r in rows(live, capture_samples) if r["id"] == sample_id)
    assert bytes(kept["body"]) == body  # byte-exact
    assert kept["headers"]["authorization"] == "[redacted]"
    assert kept["query"] == {"x": "1"}
    assert rows(live, events) == []  # a sample is not an event: nothing is delivered

    # The cap: answered as usual, stored no more.
    answers_ = [httpx.post(f"{base}/hooks/newcrm", content=body, headers=headers)
                for _ in range(CAP + 2)]
    assert {a.status_code for a in answers_} == {202}
    assert len([r for r in rows(live, capture_samples) if r["name"] == "newcrm"]) == CAP
    assert answers_[-1].json()["stored"] is False

    listed = relay(live, "capture", "samples", "newcrm")
    assert str(sample_id) in listed.stdout and "unchecked" in listed.stdout

    drafted = relay(live, "draft", "newcrm", str(sample_id), "--write")
    assert drafted.returncode == 0, drafted.stderr
    check = relay(live, "check", str(live["root"] / "mappings" / "newcrm.yaml"))
    assert check.returncode == 0, check.stdout + check.stderr

    closed = relay(live, "capture", "close", "newcrm")
    assert "closed" in closed.stdout
    replayed = relay(live, "capture", "replay", "newcrm", str(sample_id))
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert "accepted, 1 delivery(ies) queued" in replayed.stdout
    calls = wait_for(lambda: httpx.get(f"{live['engati']}/_sandbox/calls").json(),
                     what="the replayed sample delivered")
    assert calls[0]["json"]["user.phone_no"] == "919812345678"
    # The mapping now serves the name: the sender's requests are events again.
    assert wait_for(lambda: "event_id" in httpx.post(f"{base}/hooks/newcrm", content=body,
                                                     headers=headers).json(),
                    timeout=10, what="the mapping serving")


def test_salesforce_gets_its_ack_from_a_window_without_a_mapping(live):
    base = live["base"]
    assert relay(live, "capture", "sfnew").returncode == 0
    answer = httpx.post(f"{base}/hooks/sfnew", content=soap(2),
                        headers={"Content-Type": "text/xml; charset=utf-8"})
    assert answer.status_code == 200, answer.text
    assert "<Ack>true</Ack>" in answer.text
    assert answer.headers["content-type"].startswith("text/xml")
    assert [r["name"] for r in rows(live, capture_samples)].count("sfnew") == 1


def test_a_window_on_a_signed_mapping_verifies_and_delivers_nothing(live):
    """A window on an existing mapping keeps verified samples, refuses forgeries (401,
    nothing stored), and delivers nothing."""
    base = live["base"]
    assert relay(live, "capture", "signed").returncode == 0
    # Every web process reads the windows for every webhook (RELAY_CAPTURE_REFRESH=0): the
    # first request already meets the window, whichever process takes it.
    before = len(rows(live, events))
    body = json.dumps({"phone": "+919812345678"}).encode()

    answer = httpx.post(f"{base}/hooks/signed", content=body, headers=signed(body))
    assert answer.json()["status"] == "captured", answer.text
    assert answer.json()["signature"] == "verified"
    forged = httpx.post(f"{base}/hooks/signed", content=body, headers=signed(body, "wrong"))
    assert forged.status_code == 401
    samples = [r for r in rows(live, capture_samples) if r["name"] == "signed"]
    assert [s["signature"] for s in samples] == ["verified"]
    assert samples[0]["headers"]["typeform-signature"] == "[redacted]"
    assert len(rows(live, events)) == before
    assert relay(live, "capture", "close", "signed").returncode == 0
    accepted = httpx.post(f"{base}/hooks/signed", content=body, headers=signed(body))
    assert "event_id" in accepted.json(), accepted.text
