"""Webhooks answered in the event loop (relay/web/hooks.py): the same answers as the WSGI
app's, accepts gathered into batches while one is written, and each webhook its own
receipt or error."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from werkzeug.test import EnvironBuilder

from relay.config import Settings
from relay.errors import StoreUnavailable
from relay.sources.registry import Registry
from relay.store import open_store
from relay.web.app import create_app
from relay.web.hooks import Accepts, Hooks
from relay.web.intake import Intake, hook_name, run

LEADS = """
id: body.id
phone: {path: body.phone, region: IN}
source: typeform
secret: ${HOOKS_TEST_SECRET}
flows: [{flow_key: F}]
"""
SECRET = "s3cret"


@pytest.fixture
def intake(tmp_path, write_mapping, monkeypatch):
    monkeypatch.setenv("HOOKS_TEST_SECRET", SECRET)
    folder = write_mapping(LEADS, name="leads").parent
    url = f"sqlite:///{tmp_path / 'relay.db'}"
    store = open_store(url, timeout=0.5)
    store.upgrade()
    registry = Registry(folder)
    registry.load()
    app = create_app(Settings(database_url=url, mappings=str(folder)), store=store,
                     registry=registry)
    assert isinstance(app.wsgi_app, Intake)
    return app.wsgi_app


def environ(path: str = "/hooks/leads", body: bytes = b"", method: str = "POST",
            signature: str | None = None) -> dict:
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["Typeform-Signature"] = signature
    return EnvironBuilder(path=path, method=method, data=body, headers=headers).get_environ()


def signed(lead_id: str) -> dict:
    body = json.dumps({"id": lead_id, "phone": "9812345678"}).encode()
    digest = hmac.new(SECRET.encode(), body, hashlib.sha256).digest()
    return environ(body=body, signature="sha256=" + base64.b64encode(digest).decode())


def name(environ: dict) -> str:
    return hook_name(environ["PATH_INFO"]) or ""


def answer_in_loop(intake: Intake, *environs: dict) -> list:
    async def main():
        with ThreadPoolExecutor(2) as pool:
            hooks = Hooks(intake, pool)
            return await asyncio.gather(*(hooks.answer(e, name(e)) for e in environs))
    return asyncio.run(main())


def answered(answer) -> tuple[str, dict]:
    status, _headers, body = answer
    return status, json.loads(body)


def test_the_loop_gives_the_wsgi_apps_answers(intake):
    """Accepted, duplicate, forged (a refusal counted, through the pool), unknown mapping
    and a GET, each as the WSGI app answers it."""
    requests = [lambda: signed("A"), lambda: signed("A"),
                lambda: environ(body=b'{"id": "B"}', signature="sha256=forged"),
                lambda: environ("/hooks/nothing-here", b"{}"),
                lambda: environ(method="GET")]
    looped = [answered(answer_in_loop(intake, make())[0]) for make in requests]
    assert [status for status, _ in looped] == [
        "202 Accepted", "200 OK", "401 Unauthorized", "404 Not Found",
        "405 Method Not Allowed"]
    first = looped[0][1]["event_id"]
    assert looped[1][1] == {"status": "duplicate", "event_id": first}
    # The WSGI app, on the same store: the same answers (the first now a duplicate too).
    wsgi = [answered(run(intake.handle(e := make(), name(e)))) for make in requests]
    assert [status for status, _ in wsgi] == ["200 OK", *[status for status, _ in looped[1:]]]
    assert wsgi[0][1] == {"status": "duplicate", "event_id": first}
    assert [a for _, a in wsgi[2:]] == [a for _, a in looped[2:]]
    # Both forgeries were counted (written with the flush), the loop's as the app's.
    intake.store.flush(time.time())
    with sqlite3.connect(intake.settings.database_url.removeprefix("sqlite:///")) as db:
        assert db.execute("SELECT sum(count) FROM refusal_counts").fetchone() == (2,)


def test_webhooks_arriving_while_a_batch_is_written_go_in_the_next_together(intake):
    store = intake.store
    batches: list[int] = []
    first_written = threading.Event()
    release = threading.Event()
    accept_many = store.accept_many

    def slow_accept_many(received):
        batches.append(len(received))
        if len(batches) == 1:
            first_written.set()
            assert release.wait(10)
        return accept_many(received)

    store.accept_many = slow_accept_many  # type: ignore[method-assign]

    async def main():
        with ThreadPoolExecutor(2) as pool:
            hooks = Hooks(intake, pool)
            first = asyncio.ensure_future(hooks.answer(signed("first"), "leads"))
            await asyncio.get_running_loop().run_in_executor(None, first_written.wait, 10)
            rest = [asyncio.ensure_future(hooks.answer(signed(f"n{i}"), "leads")) for i in range(5)]
            while len(hooks.accepts._gathering) < 5:  # all five waiting for their turn
                await asyncio.sleep(0.001)
            release.set()
            return await asyncio.gather(first, *rest)

    answers = asyncio.run(main())
    assert batches == [1, 5]
    ids = [answered(a)[1]["event_id"] for a in answers]
    assert [answered(a)[0] for a in answers] == ["202 Accepted"] * 6
    assert len(set(ids)) == 6
    assert all(store.event(i)["deliveries"] for i in ids)


def test_each_webhook_of_a_batch_gets_its_own_receipt_or_error():
    class Store:
        def accept_many(self, received):
            return [StoreUnavailable("disk full") if r == "bad" else f"receipt {r}"
                    for r in received]

    async def main():
        with ThreadPoolExecutor(1) as pool:
            accepts = Accepts(Store(), pool)  # type: ignore[arg-type]
            return await asyncio.gather(*(accepts.submit(r) for r in ("a", "bad", "c")),
                                        return_exceptions=True)

    good, bad, other = asyncio.run(main())
    assert (good, other) == ("receipt a", "receipt c")
    assert isinstance(bad, StoreUnavailable)


def test_a_batch_the_store_cannot_write_fails_each_webhook_and_the_next_goes_on():
    class Store:
        calls = 0

        def accept_many(self, received):
            Store.calls += 1
            if Store.calls == 1:
                raise StoreUnavailable("database is locked")
            return [f"receipt {r}" for r in received]

    async def main():
        with ThreadPoolExecutor(1) as pool:
            accepts = Accepts(Store(), pool)  # type: ignore[arg-type]
            first = await asyncio.gather(accepts.submit("a"), return_exceptions=True)
            return first, await accepts.submit("b")

    (failed,), then = asyncio.run(main())
    assert isinstance(failed, StoreUnavailable)
    assert then == "receipt b"


def test_a_store_that_fails_gets_the_sender_503_from_the_loop(intake):
    def unavailable(received):
        raise StoreUnavailable("database is locked")

    intake.store.accept_many = unavailable  # type: ignore[method-assign]
    status, answer = answered(answer_in_loop(intake, signed("X"))[0])
    assert status == "503 Service Unavailable"
    assert "nothing was accepted" in answer["hint"]
