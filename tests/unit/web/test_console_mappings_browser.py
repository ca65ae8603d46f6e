"""The Mappings page in a real browser (headless Chromium, as test_console_browser.py):
one mapping of each state, the URL to paste, the day's counts. Screenshot:
build/screenshots/mappings.png."""

from __future__ import annotations

import httpx
import pytest

from tests.support.live import Relay, answers, free_port, wait_for
from tests.unit.web.test_console_browser import SHOTS, TOKEN, browser  # noqa: F401

ENGATI = "engati: {customer_id: '1', bot_key: b, api_key: k, base_url: 'http://127.0.0.1:9'}\n"
BASE = "phone: body.phone\nflows: [{flow_key: F}]\n"
FILES = {
    "leads": "source: generic\nverify: false\n" + ENGATI + BASE,
    "typeform-leads": "source: typeform\nsecret: ${BROWSER_TYPEFORM_SECRET}\n" + ENGATI + BASE,
    "crm": "source: generic\nverify: false\n" + BASE,
}


@pytest.fixture(scope="module")
def relay(tmp_path_factory):
    root = tmp_path_factory.mktemp("mappings-page")
    folder = root / "mappings"
    folder.mkdir()
    for name, text in FILES.items():
        (folder / f"{name}.yaml").write_text(text)
    port = free_port()
    env = {"DATABASE_URL": f"sqlite:///{root / 'relay.db'}", "RELAY_MAPPINGS": str(folder),
           "ENGATI_CUSTOMER_ID": "", "ENGATI_BOT_KEY": "", "ENGATI_API_KEY": "",
           "RELAY_ADMIN_TOKEN": TOKEN,
           "RELAY_PUBLIC_URL": "https://relay.example.com"}
    serve = Relay(["serve", "--port", str(port)], env, root / "serve.log")
    try:
        wait_for(lambda: answers(f"http://127.0.0.1:{port}/healthz"), what="relay serve")
        # A file that breaks once the relay runs (a broken one would stop it starting).
        (folder / "orders.yaml").write_text("phone: body.phone\nflows:\n  - wen: x\n"
                                            "    flow_key: F\n")
        yield f"http://127.0.0.1:{port}", serve
    finally:
        assert serve.stop() == 0, serve.output()[-2000:]


def test_every_mapping_with_its_url_state_and_counts(browser, relay):  # noqa: F811
    base, serve = relay
    SHOTS.mkdir(parents=True, exist_ok=True)
    for n in range(3):
        answer = httpx.post(f"{base}/hooks/leads", json={"phone": f"+91981234567{n}"})
        assert answer.status_code == 202, answer.text
    assert httpx.post(f"{base}/hooks/leads", json={"phone": "nope"}).status_code == 422

    page = browser.new_page()
    page.goto(f"{base}/admin/login")
    page.fill("input[name=token]", TOKEN)
    page.click("form button")
    page.wait_for_url("**/admin/")
    page.click("header a:text-is('Mappings')")
    page.wait_for_url("**/admin/mappings")

    def broken_listed():
        page.reload()
        return page.locator("tr[data-mapping=orders]").count() == 1

    wait_for(broken_listed, what="the broken file on the page")
    states = {row.get_attribute("data-mapping"): row.get_attribute("data-state")
              for row in page.locator("tr[data-mapping]").all()}
    assert states == {"crm": "unconfigured", "leads": "ok", "orders": "broken",
                      "typeform-leads": "locked"}
    row = page.locator("tr[data-mapping=leads]")
    assert row.locator(".url").inner_text() == "https://relay.example.com/hooks/leads"
    assert (row.locator(".n-accepted").inner_text(), row.locator(".n-failed").inner_text()) == (
        "3", "1")
    assert "line 3" in page.locator("tr[data-mapping=orders] .state").inner_text()
    assert "unknown key" in page.locator("tr[data-mapping=orders] .state").inner_text()
    locked = page.locator("tr[data-mapping=typeform-leads] .state").inner_text()
    assert "waiting on a secret" in locked and "BROWSER_TYPEFORM_SECRET" in locked
    assert "ENGATI_API_KEY" in page.locator("tr[data-mapping=crm] .state").inner_text()
    assert page.locator("#url-note").count() == 0  # RELAY_PUBLIC_URL is set
    page.screenshot(path=SHOTS / "mappings.png", full_page=True)

    # Each web process finds the broken file on its own check of the folder, so /readyz
    # (answered by either) lists it once both have looked.
    def ready_states():
        ready = httpx.get(f"{base}/readyz").json()
        return {s["name"]: s["state"] for s in ready["states"]}

    wait_for(lambda: ready_states() == states and ready_states() == states,
             what="both web processes to list the broken file")
    # Start-up said once, in the parent, what loaded and what waits on a secret.
    output = serve.output()
    assert output.count("loaded 3 mapping(s)") == 1, output[-3000:]
    assert output.count("waiting on a secret: typeform-leads") == 1, output[-3000:]
