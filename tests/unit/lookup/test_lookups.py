"""The lookup stage end to end, minus the processes: a signed Meta notification taken by the
intake (stored, answered, nothing fetched), then the worker's Lookups reading the lead from a
real HTTP server on 127.0.0.1 standing in for the Graph API, mapping it and planning the
delivery in the same transaction; retries, dead lookups, replay, duplicates, the token kept
out of every row. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import textwrap
import time

import httpx
import pytest
import sqlalchemy as sa

from relay.config import Settings
from relay.delivery.policy import RetryPolicy
from relay.delivery.store_thread import StoreThread
from relay.lookup.runner import Lookups
from relay.sources.registry import Registry
from relay.store.replay import replay_event
from relay.web.app import create_app

SECRET, VERIFY, TOKEN = "app-secret-1", "verify-1", "page-token-never-stored-9f3"
ADMIN = "admin-token-for-lookup-tests-0123456789"
MAPPING = f"""
source: meta-lead-ads
secret: {SECRET}
verify_token: {VERIFY}
lookup:
  token: {TOKEN}
phone: {{path: lead.fields.phone_number, region: IN}}
filter: lead.fields.consent != 'no'
attributes:
  name: lead.fields.full_name
  form: item.value.form_id
flows: [{{flow_key: WELCOME}}]
"""


def notification(*leads: str) -> bytes:
    return json.dumps({"object": "page", "entry": [{"id": "5165", "time": 1764583200,
                       "changes": [{"field": "leadgen", "value": {
                           "leadgen_id": lead, "form_id": "5511", "page_id": "5165",
                           "created_time": 1764583199}} for lead in leads]}]}).encode()


def lead(lead_id: str, phone: str = "098123 45678", **fields: str) -> dict:
    data = {"phone_number": phone, "full_name": "Asha Rao", **fields}
    return {"id": lead_id, "created_time": "2026-12-01T10:00:00+0000",
            "field_data": [{"name": k, "values": [v]} for k, v in data.items()]}


class Relay:
    """The intake and the worker's lookup loop over one store and mappings folder."""

    def __init__(self, store, folder):
        self.store = store
        self.skew = [0.0]  # seconds the worker's clock runs ahead: retries fall due
        self.registry = Registry(folder)
        self.registry.load()
        self.app = create_app(Settings(database_url="sqlite://", mappings=str(folder),
                                       admin_token=ADMIN), store=store, registry=self.registry)
        self.http = self.app.test_client()
        self.policy = RetryPolicy(base=10.0, cap=60.0, max_attempts=3, max_age=3600.0,
                                  rng=lambda: 0.5)

    def post(self, raw: bytes):
        signature = "sha256=" + hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
        return self.http.post("/hooks/meta", data=raw, content_type="application/json",
                              headers={"X-Hub-Signature-256": signature})

    def now(self) -> float:
        return time.time() + self.skew[0]

    def run_lookups(self) -> int:
        lookups = Lookups(StoreThread(self.store), self.registry, self.policy, worker="w1",
                          lease=60.0, poll_interval=1.0, clock=self.now)
        return asyncio.run(lookups.run_once())


@pytest.fixture
def relay(store, tmp_path, engati, monkeypatch):
    monkeypatch.setenv("META_GRAPH_URL", engati.url)
    return Relay(store, folder_of(tmp_path))


def folder_of(tmp_path):
    folder = tmp_path / "mappings"
    folder.mkdir()
    (folder / "meta.yaml").write_text(textwrap.dedent(MAPPING))
    return folder


def graph(answers: dict, seen: list):
    """A Graph API stand-in: answers[lead_id] is (status, json) or a lead."""
    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        lead_id = request.url.path.rsplit("/", 1)[-1]
        found = answers.get(lead_id, (400, {"error": {"code": 100, "message": "no such"}}))
        status, body = found if isinstance(found, tuple) else (200, found)
        return httpx.Response(status, json=body)
    return answer


class TestTheLeadIsLookedUp:
    def test_intake_stores_and_answers_without_calling_out(self, relay, engati):
        seen: list = []
        engati.handler = graph({}, seen)
        answer = relay.post(notification("111"))
        assert answer.status_code == 200
        assert answer.get_json() == {"status": "accepted", "event_id": 1, "deliveries": 0,
                                     "lookups": 1}
        event = relay.store.event(1)
        assert event["status"] == "accepted" and event["deliveries"] == []
        (planned,) = event["lookups"]
        assert planned["status"] == "pending" and planned["url"] == f"{engati.url}/v25.0/111"
        assert seen == []

    def test_the_worker_reads_the_lead_and_plans_its_delivery(self, relay, engati):
        seen: list = []
        engati.handler = graph({"111": lead("111")}, seen)
        relay.post(notification("111"))
        assert relay.run_lookups() == 1
        (request,) = seen
        assert request.headers["authorization"] == f"Bearer {TOKEN}"
        assert request.url.path == "/v25.0/111"
        event = relay.store.event(1)
        (delivery,) = event["deliveries"]
        assert (delivery["phone"], delivery["flow_key"], delivery["dedup_key"]) == (
            "919812345678", "WELCOME", "111")
        assert delivery["attributes"] == {"name": "Asha Rao", "form": "5511"}
        (looked,) = event["lookups"]
        assert looked["status"] == "done" and looked["attempts"] == 1
        assert [t["http"] for t in looked["tries"]] == [200]
        (claimed,) = relay.store.claim("w", 10, relay.now() + 1, 60)  # due for Engati now
        assert claimed.phone == "919812345678"

    def test_each_leadgen_change_is_looked_up_and_delivered(self, relay, engati):
        engati.handler = graph({"1": lead("1", "+919800000001"),
                                "2": lead("2", "+919800000002")}, [])
        assert relay.post(notification("1", "2")).get_json()["lookups"] == 2
        assert relay.run_lookups() == 2
        phones = sorted(d["phone"] for d in relay.store.event(1)["deliveries"])
        assert phones == ["919800000001", "919800000002"]

    def test_meta_resending_the_notification_is_a_duplicate(self, relay, engati):
        engati.handler = graph({"111": lead("111")}, [])
        relay.post(notification("111"))
        again = relay.post(notification("111"))
        assert again.get_json() == {"status": "duplicate", "event_id": 1}
        assert relay.run_lookups() == 1

    def test_the_token_is_in_no_stored_row(self, relay, engati, store):
        engati.handler = graph({"111": (500, {"error": {"message": "oops", "code": 2}})}, [])
        relay.post(notification("111"))
        relay.run_lookups()
        with store.engine.connect() as conn:
            for table in ("events", "deliveries", "lookups", "attempts"):
                for row in conn.execute(sa.text(f"SELECT * FROM {table}")):
                    assert TOKEN not in str(row)


class TestWhenTheLookupFails:
    def test_a_passing_failure_is_retried_after_a_backoff(self, relay, engati):
        seen: list = []
        engati.handler = graph({"111": (503, {"error": {"message": "busy", "code": 2}})}, seen)
        relay.post(notification("111"))
        relay.run_lookups()
        (looked,) = relay.store.event(1)["lookups"]
        assert looked["status"] == "pending" and looked["attempts"] == 1
        assert looked["next_at"] - looked["updated_at"] == 5.0  # rng 0.5 of a 10 s base
        assert "answered HTTP 503: busy (code 2)" in looked["last_error"]
        assert relay.run_lookups() == 0  # not due yet
        engati.handler = graph({"111": lead("111")}, seen)
        relay.skew[0] += 10
        assert relay.run_lookups() == 1
        event = relay.store.event(1)
        assert event["status"] == "accepted" and len(event["deliveries"]) == 1
        assert [t["http"] for t in event["lookups"][0]["tries"]] == [503, 200]

    def test_throttling_is_retried_and_attempts_run_out(self, relay, engati):
        engati.handler = graph({"111": (400, {"error": {"message": "limit", "code": 613}})}, [])
        relay.post(notification("111"))
        for _ in range(3):
            relay.run_lookups()
            relay.skew[0] += 100
        (looked,) = relay.store.event(1)["lookups"]
        assert looked["status"] == "dead" and "gave up after 3 attempts" in looked["last_error"]
        assert relay.store.event(1)["status"] == "failed"

    def test_a_lead_that_is_gone_fails_the_event_at_once_and_replay_retries(self, relay,
                                                                             engati):
        engati.handler = graph({}, [])  # every id: Graph error 100
        relay.post(notification("111"))
        relay.run_lookups()
        event = relay.store.event(1)
        assert event["status"] == "failed" and event["lookups"][0]["status"] == "dead"
        assert "code 100" in event["errors"][0]["message"]
        assert event["errors"][0]["field"] == "lookup"
        assert 1 in relay.store.replayable(dead=False, failed=True, mapping=None, since=None)
        engati.handler = graph({"111": lead("111")}, [])
        replayed = replay_event(relay.store, relay.registry.get, 1, relay.now())
        assert replayed.ok and "1 queued" in replayed.message
        assert relay.store.event(1)["status"] == "accepted"
        assert relay.run_lookups() == 1
        assert len(relay.store.event(1)["deliveries"]) == 1

    def test_a_lead_without_a_phone_fails_naming_the_field(self, relay, engati):
        engati.handler = graph({"111": {"id": "111", "field_data": []}}, [])
        relay.post(notification("111"))
        relay.run_lookups()
        event = relay.store.event(1)
        assert event["status"] == "failed" and event["lookups"][0]["status"] == "failed"
        assert event["errors"][0]["field"] == "each[0].phone"

    def test_the_filter_reads_the_lead_and_skips(self, relay, engati):
        engati.handler = graph({"111": lead("111", consent="no")}, [])
        relay.post(notification("111"))
        relay.run_lookups()
        event = relay.store.event(1)
        assert event["status"] == "skipped" and event["deliveries"] == []
        assert event["lookups"][0]["status"] == "skipped"

    def test_a_redirect_is_not_followed(self, relay, engati):
        seen: list = []

        def redirect(request):
            seen.append(request)
            return httpx.Response(302, headers={"Location": "http://127.0.0.1:9/steal"})
        engati.handler = redirect
        relay.post(notification("111"))
        relay.run_lookups()
        (looked,) = relay.store.event(1)["lookups"]
        assert looked["status"] == "dead" and "redirect, not followed" in looked["last_error"]
        assert len(seen) == 1

    @pytest.mark.parametrize("raw", [b"not json", b"[" * 100_000 + b"]" * 100_000,
                                     b"{" + b" " * (1024 * 1024) + b"}"])
    def test_an_answer_that_is_no_json_deep_or_huge_is_dead_not_a_crash(self, relay, engati,
                                                                        raw):
        engati.handler = lambda request: httpx.Response(200, content=raw)
        relay.post(notification("111"))
        assert relay.run_lookups() == 1
        (looked,) = relay.store.event(1)["lookups"]
        assert looked["status"] == "dead"
        assert "no JSON" in looked["last_error"] or "more than" in looked["last_error"]

    def test_an_unreachable_graph_is_retried(self, store, tmp_path, monkeypatch):
        monkeypatch.setenv("META_GRAPH_URL", "http://127.0.0.1:9")  # nothing listens there
        relay = Relay(store, folder_of(tmp_path))
        relay.post(notification("111"))
        relay.run_lookups()
        (looked,) = relay.store.event(1)["lookups"]
        assert looked["status"] == "pending"
        assert "could not reach 127.0.0.1:9" in looked["last_error"]


class TestLeases:
    def test_a_lookup_held_by_a_dead_worker_is_taken_again_and_its_late_outcome_refused(
            self, relay):
        """A worker that dies holding a lookup loses it when the lease runs out; the one that
        takes it then records it, and the dead one's outcome (had it come) is refused."""
        from relay.model import Looked, LookupStatus
        relay.post(notification("111"))
        now = relay.now()
        (held,) = relay.store.claim_lookups("dead-worker", 10, now, 60)
        assert relay.store.claim_lookups("w2", 10, now + 30, 60) == []  # still leased
        (again,) = relay.store.claim_lookups("w2", 10, now + 61, 60)
        assert again.id == held.id and again.body == held.body
        tried = {"at": now, "ms": 1.0, "http": 503, "error": "busy"}
        late = Looked(held.id, tried, LookupStatus.DEAD, error="busy")
        assert not relay.store.finish_lookup(late, "dead-worker", now + 62)
        kept = Looked(held.id, tried, LookupStatus.PENDING, next_at=now + 70, error="busy")
        assert relay.store.finish_lookup(kept, "w2", now + 62)
        (looked,) = relay.store.event(1)["lookups"]
        assert (looked["status"], looked["attempts"], len(looked["tries"])) == ("pending", 1, 1)


class TestShown:
    def test_the_api_the_console_and_the_cli_show_the_lookup_and_its_tries(self, relay,
                                                                          engati):
        engati.handler = graph({"111": (503, {"error": {"message": "busy", "code": 2}})}, [])
        relay.post(notification("111"))
        bearer = {"Authorization": f"Bearer {ADMIN}"}
        listed = relay.http.get("/api/events", headers=bearer).get_json()["events"][0]
        assert listed["looking"] == 1  # pending, not "delivered": nothing is planned yet
        relay.run_lookups()
        shown = relay.http.get("/api/events/1", headers=bearer).get_json()
        (looked,) = shown["lookups"]
        assert looked["status"] == "pending" and looked["tries"][0]["http"] == 503
        console = relay.app.test_client()
        console.post("/admin/login", data={"token": ADMIN})
        page = console.get("/admin/events/1").get_data(as_text=True)
        assert f"GET {engati.url}/v25.0/111" in page and "busy (code 2)" in page
        assert TOKEN not in page
