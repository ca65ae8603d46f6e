"""End to end with real processes: `relay serve` (gunicorn + worker) and the Engati sandbox.

Everything listens on 127.0.0.1 on free ports and is stopped at the end.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from relay.store import open_store
from tests.conftest import MAPPINGS
from tests.support.live import Relay, answers, free_port, wait_for

MAPPING = """
id: body.id
phone: body.phone
attributes:
  marker: body.marker
flows: [{flow_key: E2EFLOW}]
"""
SIGNED = """
source: typeform
secret: ${E2E_TYPEFORM_SECRET}
phone: body.phone
attributes:
  marker: body.marker
flows: [{flow_key: SIGNED}]
"""


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    (root / "mappings").mkdir()
    (root / "mappings" / "e2e.yaml").write_text(MAPPING)
    (root / "mappings" / "signed.yaml").write_text(SIGNED)
    shutil.copy(MAPPINGS / "salesforce-leads.yaml", root / "mappings")
    shutil.copy(MAPPINGS / "meta-lead-ads.yaml", root / "mappings")
    sandbox_port, relay_port = free_port(), free_port()
    env = {
        "DATABASE_URL": f"sqlite:///{root / 'relay.db'}",
        "RELAY_MAPPINGS": str(root / "mappings"),
        "ENGATI_BASE_URL": f"http://127.0.0.1:{sandbox_port}",
        "ENGATI_CUSTOMER_ID": "123456",
        "ENGATI_BOT_KEY": "0a1b2c3d4e5f6a7b",
        "ENGATI_API_KEY": "e2e-api-key",
        "RELAY_RETRY_BASE": "0.2",
        "RELAY_RETRY_CAP": "2",
        "RELAY_POLL_INTERVAL": "0.05",
        "RELAY_UNVERIFIED_LIMIT": "1000000",  # most test mappings verify nothing
        "E2E_TYPEFORM_SECRET": "e2e-typeform-secret",
        # Meta Lead Ads, with the sandbox standing in for the Graph API too.
        "META_APP_SECRET": "e2e-meta-app-secret",
        "META_VERIFY_TOKEN": "e2e-verify-token",
        "META_PAGE_TOKEN": "e2e-page-token",
        "META_GRAPH_URL": f"http://127.0.0.1:{sandbox_port}",
    }
    sandbox = Relay(["sandbox", "--port", str(sandbox_port), "--api-key", "e2e-api-key"], env,
                    root / "sandbox.log")
    serve = Relay(["serve", "--port", str(relay_port)], env, root / "serve.log")
    base = f"http://127.0.0.1:{relay_port}"
    try:
        wait_for(lambda: answers(f"http://127.0.0.1:{sandbox_port}/_sandbox/calls"),
                 what="the sandbox")
        wait_for(lambda: answers(f"{base}/readyz"), what="relay serve")
        live = Live(base, f"http://127.0.0.1:{sandbox_port}", env, root)
        yield live
        live.store.dispose()
    finally:
        serve_code = serve.stop()
        sandbox.stop()
    assert serve_code == 0, serve.output()[-3000:]
    # Every line of every process could be written (gunicorn's own format among them).
    assert "--- Logging error ---" not in serve.output(), serve.output()[-3000:]


class Live:
    def __init__(self, base, sandbox, env, root):
        self.base, self.sandbox, self.env, self.root = base, sandbox, env, root
        self.store = open_store(env["DATABASE_URL"])

    def post(self, body):
        return httpx.post(f"{self.base}/hooks/e2e", json=body, timeout=10)

    def lead(self, **extra):
        marker = uuid.uuid4().hex
        return {"id": marker, "phone": "+919812345678", "marker": marker, **extra}

    def steer(self, path, body):
        httpx.post(f"{self.sandbox}/_sandbox/{path}", json=body, timeout=5).raise_for_status()

    def calls(self, marker):
        every = httpx.get(f"{self.sandbox}/_sandbox/calls", timeout=5).json()
        return [c for c in every if (c["json"] or {}).get("marker") == marker]

    def delivery(self, event_id):
        (delivery,) = self.store.event(event_id)["deliveries"]
        return delivery

    def relay(self, *args, **env):
        return subprocess.run([sys.executable, "-m", "relay", *args], env={**self.env, **env},
                              capture_output=True, text=True, timeout=60)


def test_delivered_with_the_exact_request(live):
    """A webhook reaches Engati as the v2 request, with the raw key in Basic auth."""
    lead = live.lead()
    response = live.post(lead)
    assert response.status_code == 202
    (call,) = wait_for(lambda: live.calls(lead["marker"]), what="the Engati call")
    assert call["path"] == "/bot-api/v2.0/customer/123456/bot/0a1b2c3d4e5f6a7b/flow/E2EFLOW"
    assert call["authorization"] == "Basic e2e-api-key"
    assert call["json"] == {"user.channel": "whatsapp", "user.phone_no": "919812345678",
                            "marker": lead["marker"]}
    event_id = response.json()["event_id"]
    wait_for(lambda: live.delivery(event_id)["status"] == "delivered", what="delivered status")


def test_retries_until_success_after_503s(live):
    """Two 503s, then success: three calls, delivered."""
    live.steer("script", [{"status": 503}, {"status": 503}])
    lead = live.lead()
    event_id = live.post(lead).json()["event_id"]
    wait_for(lambda: live.delivery(event_id)["status"] == "delivered", what="delivery")
    assert [c["status"] for c in live.calls(lead["marker"])] == [503, 503, 200]
    assert live.delivery(event_id)["attempts"] == 3


def test_429_retry_after_is_waited_out(live):
    """A 429 with Retry-After: 1 is retried no sooner than a second later."""
    live.steer("script", [{"status": 429, "retry_after": 1}])
    lead = live.lead()
    event_id = live.post(lead).json()["event_id"]
    wait_for(lambda: live.delivery(event_id)["status"] == "delivered", what="delivery")
    first, second = live.calls(lead["marker"])
    assert second["at"] - first["at"] >= 1.0


def test_dead_after_400_then_replayed_once_engati_recovers(live):
    """A 400 is dead at once; `relay replay --dead` delivers it when Engati accepts again."""
    live.steer("script", [{"status": 400}])
    lead = live.lead()
    event_id = live.post(lead).json()["event_id"]
    wait_for(lambda: live.delivery(event_id)["status"] == "dead", what="dead delivery")
    assert len(live.calls(lead["marker"])) == 1
    events = live.relay("events", "--status", "dead")
    assert str(event_id) in events.stdout
    assert "Engati answered HTTP 400" in events.stdout
    replay = live.relay("replay", "--dead")
    assert replay.returncode == 0, replay.stdout + replay.stderr
    assert f"event {event_id}: 1 queued, 0 already delivered" in replay.stdout
    wait_for(lambda: live.delivery(event_id)["status"] == "delivered", what="replayed delivery")
    assert [c["status"] for c in live.calls(lead["marker"])] == [400, 200]
    again = live.relay("replay", str(event_id))
    assert f"event {event_id}: 0 queued, 1 already delivered" in again.stdout


def test_duplicate_reaches_engati_once(live):
    """The same id posted twice is one Engati call."""
    lead = live.lead()
    first = live.post(lead)
    second = live.post(lead)
    assert (first.status_code, second.status_code) == (202, 200)
    assert second.json() == {"status": "duplicate", "event_id": first.json()["event_id"]}
    wait_for(lambda: live.delivery(first.json()["event_id"])["status"] == "delivered",
             what="delivery")
    assert len(live.calls(lead["marker"])) == 1
    assert len(live.store.event(first.json()["event_id"])["deliveries"]) == 1


def test_64_concurrent_posts_are_each_delivered_once(live):
    """64 webhooks posted at once: 64 accepted, 64 Engati calls, no repeats."""
    leads = [live.lead() for _ in range(64)]
    with ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(lambda lead: live.post(lead).status_code, leads))
    assert statuses == [202] * 64
    markers = {lead["marker"] for lead in leads}

    def delivered():
        every = httpx.get(f"{live.sandbox}/_sandbox/calls", timeout=5).json()
        ours = [c["json"]["marker"] for c in every
                if c["status"] == 200 and (c["json"] or {}).get("marker") in markers]
        return ours if len(ours) >= 64 else None

    ours = wait_for(delivered, what="64 deliveries")
    assert sorted(ours) == sorted(markers)


def test_show_prints_event_deliveries_and_attempts(live):
    """`relay show` gives the body, the delivery and its attempts."""
    live.steer("script", [{"status": 503}])
    lead = live.lead()
    event_id = live.post(lead).json()["event_id"]
    wait_for(lambda: live.delivery(event_id)["status"] == "delivered", what="delivery")
    shown = live.relay("show", str(event_id)).stdout
    assert f"event {event_id}  mapping e2e" in shown
    assert lead["marker"] in shown
    assert "delivered after 2 attempt(s)" in shown
    assert "retry     HTTP 503" in shown
    assert "e2e-api-key" not in shown


def test_relay_send_signs_as_the_sender(live):
    """`relay send` signs with the mapping's secret; a wrong secret is refused with 401."""
    lead = live.lead()
    body = live.root / f"{lead['marker']}.json"
    body.write_text(json.dumps(lead))
    sent = live.relay("send", str(live.root / "mappings" / "signed.yaml"), str(body),
                      "--url", f"{live.base}/hooks/signed")
    assert sent.returncode == 0, sent.stderr
    assert "HTTP 202" in sent.stderr
    assert json.loads(sent.stdout)["status"] == "accepted"
    (call,) = wait_for(lambda: live.calls(lead["marker"]), what="the signed delivery")
    assert call["flow_key"] == "SIGNED"
    forged = live.relay("send", str(live.root / "mappings" / "signed.yaml"), str(body),
                        "--url", f"{live.base}/hooks/signed",
                        E2E_TYPEFORM_SECRET="not-the-secret")
    assert forged.returncode == 1
    assert "HTTP 401" in forged.stderr
    assert json.loads(forged.stdout) == {"error": "invalid signature"}


def test_salesforce_message_with_two_leads_is_two_calls_and_one_ack(live):
    """One Outbound Message with two leads: the Ack at once, then one Engati call per lead."""
    raw = (MAPPINGS / "examples" / "salesforce-two-leads.xml").read_bytes()
    response = httpx.post(f"{live.base}/hooks/salesforce-leads", content=raw, timeout=10,
                          headers={"Content-Type": "text/xml; charset=utf-8"})
    assert response.status_code == 200
    assert response.text.count("<Ack>true</Ack>") == 1

    def calls():
        every = httpx.get(f"{live.sandbox}/_sandbox/calls", timeout=5).json()
        ours = [c for c in every if c["flow_key"] in ("6F8B0D2C4E6A8F0B2D4F6C8E0A2B4D6F",
                                                        "5E7A9C1B3D5F7E9A1C3E5B7D9F1A3C5E")]
        return ours if len(ours) >= 2 else None

    first, second = sorted(wait_for(calls, what="two Salesforce deliveries"),
                           key=lambda c: c["json"]["name"])
    assert (first["json"]["name"], first["json"]["user.phone_no"]) == ("Anita Desai",
                                                                       "919812345678")
    assert (second["json"]["name"], second["json"]["user.phone_no"]) == ("Tom Becker",
                                                                         "14155552671")


def test_metrics_add_up_every_process(live):
    """/metrics: inbound counts from both web processes, the worker's attempts and latency,
    and the queue read from the database."""
    from prometheus_client.parser import text_string_to_metric_families

    lead = live.lead()
    event_id = live.post(lead).json()["event_id"]
    wait_for(lambda: live.delivery(event_id)["status"] == "delivered", what="delivery")

    def samples():
        text = httpx.get(f"{live.base}/metrics", timeout=10).text
        return {(s.name, tuple(sorted(s.labels.items()))): s.value
                for family in text_string_to_metric_families(text) for s in family.samples}

    found = wait_for(lambda: (s := samples()) and s.get(
        ("relay_delivery_attempts_total", (("mapping", "e2e"), ("outcome", "delivered"))))
        and s, what="the worker's counters at /metrics")
    assert found[("relay_inbound_requests_total", (("mapping", "e2e"), ("status", "202")))] >= 1
    assert found[("relay_engati_call_seconds_count", ())] >= 1
    assert ("relay_queue_depth", ()) in found
    assert ("relay_dead_deliveries", ()) in found
    assert found[("relay_queue_oldest_seconds", ())] >= 0


def test_meta_lead_ads_handshake_signed_notification_lookup_and_engati_call(live):
    """Meta's flow through real processes: the subscription GET is answered, a notification
    signed as Meta signs (`relay send`) is stored and answered 200, the worker reads the lead
    from the Graph API stand-in with the Page token, and Engati gets the lead's phone."""
    shake = httpx.get(f"{live.base}/hooks/meta-lead-ads", timeout=10, params={
        "hub.mode": "subscribe", "hub.challenge": "1158201444",
        "hub.verify_token": "e2e-verify-token"})
    assert (shake.status_code, shake.text) == (200, "1158201444")
    wrong = httpx.get(f"{live.base}/hooks/meta-lead-ads", timeout=10, params={
        "hub.mode": "subscribe", "hub.challenge": "1", "hub.verify_token": "guess"})
    assert wrong.status_code == 403
    leadgen_id = str(uuid.uuid4().int)[:15]
    body = json.loads((MAPPINGS / "examples" / "meta-leadgen.json").read_text())
    body["entry"][0]["changes"][0]["value"]["leadgen_id"] = leadgen_id
    (live.root / "notification.json").write_text(json.dumps(body))
    sent = live.relay("send", "meta-lead-ads", str(live.root / "notification.json"),
                      "--url", f"{live.base}/hooks/meta-lead-ads")
    assert sent.returncode == 0, sent.stdout + sent.stderr
    answer = json.loads(sent.stdout)
    assert (answer["status"], answer["deliveries"], answer["lookups"]) == ("accepted", 0, 1)
    phone = "9198" + leadgen_id[-8:]  # the sandbox's made-up lead ends in the id's digits

    def engati_call():
        every = httpx.get(f"{live.sandbox}/_sandbox/calls", timeout=5).json()
        return [c for c in every if (c["json"] or {}).get("user.phone_no") == phone]

    (call,) = wait_for(engati_call, what="the Engati call for the lead")
    assert call["flow_key"] == "9A1C3E5B7D9F1A3C5E7B9D1F3A5C7E9B"
    assert call["json"]["name"] == "Sandbox Lead"
    reads = httpx.get(f"{live.sandbox}/_sandbox/lookups", timeout=5).json()
    assert {"path": f"/v25.0/{leadgen_id}", "status": 200, "token": True} in [
        {k: r[k] for k in ("path", "status", "token")} for r in reads]
    event = live.store.event(answer["event_id"])
    assert event["lookups"][0]["status"] == "done"
    assert "e2e-page-token" not in json.dumps(event, default=str)
