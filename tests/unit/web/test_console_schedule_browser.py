"""The console's Send now and Cancel in a real browser (headless Chromium, Playwright), over
`relay serve` and the Engati sandbox: two webhooks scheduled an hour ahead; one is sent now
and reaches the sandbox, the other is cancelled and never does. Screenshots go to
build/screenshots/."""

from __future__ import annotations

import httpx
import pytest

from tests.support.live import Relay, answers, free_port, wait_for
from tests.unit.web.test_console_browser import CHROMIUM, SHOTS, TOKEN

MAPPING = """
id: body.id
phone: body.phone
schedule:
  delay: 1h
  key: body.checkout
flows: [{flow_key: LATERFLOW}]
"""


@pytest.fixture(scope="module")
def browser():
    playwright = pytest.importorskip("playwright.sync_api")
    if not CHROMIUM or not __import__("pathlib").Path(CHROMIUM).exists():
        pytest.skip("no Chromium: apt-get install chromium (.ci/run does)")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def relay(tmp_path_factory):
    root = tmp_path_factory.mktemp("console-schedule")
    (root / "mappings").mkdir()
    (root / "mappings" / "nudges.yaml").write_text(MAPPING)
    sandbox_port, port = free_port(), free_port()
    env = {"DATABASE_URL": f"sqlite:///{root / 'relay.db'}",
           "RELAY_MAPPINGS": str(root / "mappings"),
           "ENGATI_BASE_URL": f"http://127.0.0.1:{sandbox_port}", "ENGATI_CUSTOMER_ID": "1",
           "ENGATI_BOT_KEY": "b", "ENGATI_API_KEY": "k", "RELAY_ADMIN_TOKEN": TOKEN,
           "RELAY_POLL_INTERVAL": "0.05"}
    sandbox = Relay(["sandbox", "--port", str(sandbox_port)], env, root / "sandbox.log")
    serve = Relay(["serve", "--port", str(port)], env, root / "serve.log")
    try:
        wait_for(lambda: answers(f"http://127.0.0.1:{sandbox_port}/_sandbox/calls"),
                 what="the sandbox")
        wait_for(lambda: answers(f"http://127.0.0.1:{port}/healthz"), what="relay serve")
        yield f"http://127.0.0.1:{port}", f"http://127.0.0.1:{sandbox_port}"
    finally:
        served, _ = serve.stop(), sandbox.stop()  # both stopped, whatever the first says
        assert served == 0, serve.output()[-2000:]


def test_send_now_and_cancel_a_scheduled_delivery(browser, relay):
    base, engati = relay
    SHOTS.mkdir(parents=True, exist_ok=True)
    hurried, dropped = (httpx.post(f"{base}/hooks/nudges", json={
        "id": key, "phone": "+919812345678", "checkout": f"chk-{key}"}).json()["event_id"]
        for key in ("n-1", "n-2"))

    page = browser.new_page()
    blocked: list[str] = []
    page.on("console", lambda m: blocked.append(m.text) if "Content Security Policy" in m.text
            else None)
    page.goto(f"{base}/admin/login")
    page.fill("input[name=token]", TOKEN)
    page.click("form button")
    page.wait_for_url("**/admin/")
    page.goto(f"{base}/admin/?status=scheduled")
    assert page.locator("#events a").all_inner_texts() == [str(dropped), str(hurried)]
    assert page.locator("#events td.s-scheduled").count() == 2
    page.screenshot(path=SHOTS / "events-scheduled.png", full_page=True)

    page.goto(f"{base}/admin/events/{hurried}")
    assert page.locator("#state").inner_text() == "scheduled"
    assert page.locator("td.schedule").inner_text().startswith("scheduled for ")
    assert page.locator("td.cancel-key").inner_text() == "chk-n-1"
    page.screenshot(path=SHOTS / "event-scheduled.png", full_page=True)
    page.click("button.send-now")
    page.wait_for_url(f"**/admin/events/{hurried}*")
    assert "is due now" in page.locator(".flash").inner_text()

    def delivered():
        page.reload()
        return page.locator("#state").inner_text() == "delivered"

    wait_for(delivered, what="the delivery sent now")
    assert page.locator("td.schedule").inner_text() == "sent now by an operator"
    assert page.locator("button.send-now").count() == 0

    page.goto(f"{base}/admin/events/{dropped}")
    page.click("button.cancel")
    page.wait_for_url(f"**/admin/events/{dropped}*")
    assert "is cancelled: it will never be called" in page.locator(".flash").inner_text()
    assert page.locator("#state").inner_text() == "cancelled"
    assert page.locator("td.cancelled").inner_text() == "cancelled by an operator"
    assert page.locator("button.send-now, button.cancel").count() == 0
    page.screenshot(path=SHOTS / "event-cancelled.png", full_page=True)

    page.goto(f"{base}/admin/?status=cancelled")
    assert page.locator("#events a").all_inner_texts() == [str(dropped)]
    calls = httpx.get(f"{engati}/_sandbox/calls").json()
    assert len(calls) == 1  # the one sent now; the cancelled one never
    assert blocked == []
