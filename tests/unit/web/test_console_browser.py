"""The console in a real browser (headless Chromium from Debian, driven by Playwright):
log in, find a webhook's event, see why its delivery died, replay it, use the playground.
Screenshots go to build/screenshots/."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest

from tests.support.live import Relay, answers, free_port, wait_for

ROOT = Path(__file__).resolve().parents[3]
SHOTS = ROOT / "build" / "screenshots"
TOKEN = "browser-admin-token-0123456789-abcdef"  # 32 or more: the minimum
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
MAPPING = """
id: body.id
phone: body.phone
attributes:
  name: body.name
flows: [{flow_key: BROWSERFLOW}]
"""


@pytest.fixture(scope="module")
def browser():
    playwright = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip("no Chromium: apt-get install chromium (.ci/run does)")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def relay(tmp_path_factory):
    root = tmp_path_factory.mktemp("console")
    (root / "mappings").mkdir()
    (root / "mappings" / "leads.yaml").write_text(MAPPING)
    sandbox_port, port = free_port(), free_port()
    env = {"DATABASE_URL": f"sqlite:///{root / 'relay.db'}",
           "RELAY_MAPPINGS": str(root / "mappings"),
           "ENGATI_BASE_URL": f"http://127.0.0.1:{sandbox_port}", "ENGATI_CUSTOMER_ID": "1",
           "ENGATI_BOT_KEY": "b", "ENGATI_API_KEY": "k", "RELAY_ADMIN_TOKEN": TOKEN,
           "RELAY_POLL_INTERVAL": "0.05", "RELAY_PLAYGROUND_WRITE": "true",
           "RELAY_CAPTURE_REFRESH": "0"}  # a capture window is seen by the next webhook
    sandbox = Relay(["sandbox", "--port", str(sandbox_port)], env, root / "sandbox.log")
    serve = Relay(["serve", "--port", str(port)], env, root / "serve.log")
    try:
        wait_for(lambda: answers(f"http://127.0.0.1:{sandbox_port}/_sandbox/calls"),
                 what="the sandbox")
        wait_for(lambda: answers(f"http://127.0.0.1:{port}/healthz"), what="relay serve")
        yield f"http://127.0.0.1:{port}", f"http://127.0.0.1:{sandbox_port}", root / "mappings"
    finally:
        served, _ = serve.stop(), sandbox.stop()  # both stopped, whatever the first says
        assert served == 0, serve.output()[-2000:]


def test_find_an_event_see_why_it_died_and_replay_it(browser, relay):
    base, engati, _ = relay
    SHOTS.mkdir(parents=True, exist_ok=True)
    httpx.post(f"{engati}/_sandbox/script", json=[{"status": 400}]).raise_for_status()
    posted = httpx.post(f"{base}/hooks/leads",
                        json={"id": "b-1", "phone": "+919812345678", "name": "Asha"})
    event_id = posted.json()["event_id"]

    page = browser.new_page()
    # Chromium reports what the Content-Security-Policy blocks on the page's console.
    blocked: list[str] = []
    page.on("console", lambda m: blocked.append(m.text) if "Content Security Policy" in m.text
            else None)
    answer = page.goto(f"{base}/admin/")
    assert "/admin/login" in page.url
    assert "default-src 'none'" in answer.headers["content-security-policy"]
    page.fill("input[name=token]", TOKEN)
    page.click("form button")
    page.wait_for_url("**/admin/")
    page.screenshot(path=SHOTS / "events.png", full_page=True)

    def dead_on_the_list():
        page.goto(f"{base}/admin/?status=dead")
        return page.locator(f"#events a:text-is('{event_id}')").count() == 1

    wait_for(dead_on_the_list, what="the dead event on the console")
    page.click(f"#events a:text-is('{event_id}')")
    assert "Engati answered HTTP 400" in page.content()
    assert page.locator("#state").inner_text() == "dead"  # as the list says, not "accepted"
    page.screenshot(path=SHOTS / "event-dead.png", full_page=True)
    page.click("#replay")
    assert "1 queued, 0 already delivered" in page.content()

    def delivered():  # both attempts listed: the dead one, then the replayed success
        page.reload()
        return page.locator("td.s-delivered").count() == 1 == page.locator("td.s-dead").count()

    wait_for(delivered, what="the replayed delivery")
    assert page.locator("h3 .attempts").inner_text() == "2"  # the dead one and the success
    assert page.locator("#state").inner_text() == "delivered"
    page.screenshot(path=SHOTS / "event-replayed.png", full_page=True)

    page.goto(f"{base}/admin/failures")
    page.screenshot(path=SHOTS / "failures.png", full_page=True)

    page.goto(f"{base}/admin/playground")
    page.fill("textarea[name=body]", '{"id": "p-1", "phone": "(415) 555-2671", "name": "Zoe"}')
    page.click("#preview")
    page.fill("textarea[name=body]", '{"id": "p-1", "phone": "+1 (415) 555-2671", "name": "Zoe"}')
    page.click("#preview")
    requests = page.locator("#requests").inner_text()
    assert '"user.phone_no": "14155552671"' in requests
    assert "BROWSERFLOW" in requests
    page.screenshot(path=SHOTS / "playground.png", full_page=True)
    calls = httpx.get(f"{engati}/_sandbox/calls").json()
    assert [c["status"] for c in calls] == [400, 200]  # the playground sent nothing

    missing = page.goto(f"{base}/admin/events/999")
    assert missing.status == 404
    assert page.locator("#error").inner_text() == "no event 999"
    page.click("#back")
    page.wait_for_url("**/admin/")
    page.click("header form button")  # log out
    page.wait_for_url("**/admin/login")
    page.goto(f"{base}/admin/")
    assert "/admin/login" in page.url
    assert blocked == []


def log_in(browser, base: str):
    """A page logged in to the console, and what the CSP blocked on it (should stay empty)."""
    page = browser.new_page(accept_downloads=True)
    blocked: list[str] = []
    page.on("console", lambda m: blocked.append(m.text) if "Content Security Policy" in m.text
            else None)
    page.goto(f"{base}/admin/login")
    page.fill("input[name=token]", TOKEN)
    page.click("form button")
    page.wait_for_url("**/admin/")
    return page, blocked


def test_the_dashboard_draws_its_charts(browser, relay):
    """Four charts of the last 24 hours and of 7 days, drawn from the database, nothing
    blocked by the Content-Security-Policy."""
    base, *_ = relay
    SHOTS.mkdir(parents=True, exist_ok=True)
    for i in range(3):
        httpx.post(f"{base}/hooks/leads",
                   json={"id": f"d-{i}", "phone": f"+9198765432{i:02d}", "name": "Dee"})
    page, blocked = log_in(browser, base)
    page.click("header a:text-is('Dashboard')")
    page.wait_for_url("**/admin/dashboard")
    assert page.locator("svg.chart").count() == 4
    assert page.locator("#chart-webhooks svg rect.bar").count() >= 1
    assert "leads" in page.locator("#chart-webhooks .totals").inner_text()

    def delivered():  # the sandbox answers 200: the calls show up as outcomes and latency
        page.reload()
        return page.locator("#chart-latency circle.point").count() >= 2

    wait_for(delivered, what="the deliveries on the dashboard")
    page.screenshot(path=SHOTS / "dashboard-24h.png", full_page=True)
    page.click("#windows a:text-is('7d')")
    page.wait_for_url("**/admin/dashboard?window=7d")
    assert page.locator("svg.chart").count() == 4
    page.screenshot(path=SHOTS / "dashboard-7d.png", full_page=True)
    assert blocked == []


def test_the_events_list_refreshes_itself_but_not_while_typing(browser, relay):
    """A new webhook appears on the open list without a reload; while someone types in the
    filters the list holds still, and it catches up when they leave them."""
    base, *_ = relay
    page, blocked = log_in(browser, base)
    first = httpx.post(f"{base}/hooks/leads", json={"id": "r-1", "phone": "+919812345601",
                                                     "name": "Ravi"}).json()["event_id"]
    page.wait_for_selector(f"#events a:text-is('{first}')", timeout=15_000)
    assert page.locator("#refresh").inner_text().startswith("Refreshed")
    page.screenshot(path=SHOTS / "events-refreshed.png", full_page=True)

    page.click("input[name=phone]")
    page.keyboard.type("98123")
    second = httpx.post(f"{base}/hooks/leads", json={"id": "r-2", "phone": "+919812345602",
                                                      "name": "Ravi"}).json()["event_id"]
    page.locator("#refresh", has_text="Paused while you edit").wait_for(timeout=15_000)
    assert page.locator(f"#events a:text-is('{second}')").count() == 0  # held still
    page.fill("input[name=phone]", "")
    page.click("h1")  # out of the filters
    page.wait_for_selector(f"#events a:text-is('{second}')", timeout=15_000)

    page.fill("input[name=q]", "r-2")
    page.click("#filters button")
    page.wait_for_url("**/admin/?*q=r-2*")
    assert page.locator("#events a").all_inner_texts() == [str(second)]
    page.fill("input[name=q]", "")
    page.fill("input[name=phone]", "+91 98123-45601")  # stored as 919812345601
    page.click("#filters button")
    page.wait_for_url("**phone=*")
    assert page.locator("#events a").all_inner_texts() == [str(first)]
    page.screenshot(path=SHOTS / "events-search.png", full_page=True)
    assert blocked == []


def test_the_playground_edits_a_mapping_and_opens_an_event(browser, relay, tmp_path):
    """Typing into the YAML and the body updates the preview, the rule and the error line;
    the YAML downloads; an event opens in the playground with its mapping and body."""
    base, _, folder = relay
    SHOTS.mkdir(parents=True, exist_ok=True)
    page, blocked = log_in(browser, base)
    page.goto(f"{base}/admin/playground?mapping=leads")
    assert "phone: body.phone" in page.input_value("#yaml")  # the file, prefilled
    page.fill("#body", '{"id": "p-2", "phone": "+919812345678", "name": "Asha", "city": "Pune"}')
    page.wait_for_selector("#requests:has-text('919812345678')")
    assert page.locator("#rules li").inner_text() == "rule 1: the fallback (no `when`)"

    # A rule for Pune first: the preview says it matched, and why.
    yaml = page.input_value("#yaml").replace(
        "flows: [{flow_key: BROWSERFLOW}]",
        "flows:\n  - when: body.city == 'Pune'\n    flow_key: PUNEFLOW\n"
        "  - flow_key: BROWSERFLOW")
    page.fill("#yaml", yaml)
    page.wait_for_selector("#rules li:has-text('rule 1: when `body.city == ')")
    assert "PUNEFLOW" in page.locator("#requests").inner_text()

    # An expression that does not compile, on the `when` line: marked at that line.
    line = yaml.splitlines().index("  - when: body.city == 'Pune'") + 1
    page.fill("#yaml", yaml.replace("body.city == 'Pune'", "body.city =="))
    page.wait_for_selector(f"#problems li[data-line='{line}']")
    assert page.locator("#lines span.bad").inner_text() == str(line)
    assert page.locator("#outcome").inner_text() == "the YAML does not load"
    page.screenshot(path=SHOTS / "playground-error.png", full_page=True)
    page.fill("#yaml", yaml)  # fixed again
    page.wait_for_selector("#requests:has-text('PUNEFLOW')")
    assert page.locator("#lines span.bad").count() == 0
    page.screenshot(path=SHOTS / "playground-edit.png", full_page=True)

    with page.expect_download() as download:
        page.click("#download")
    assert download.value.suggested_filename == "leads.yaml"
    saved = tmp_path / "leads.yaml"
    download.value.save_as(saved)
    assert saved.read_bytes() == yaml.encode()  # the edited text, with its own line ends

    # Saving a new mapping (RELAY_PLAYGROUND_WRITE is on here): named in the page itself.
    page.goto(f"{base}/admin/playground?new")
    page.fill("#yaml", MAPPING.replace("BROWSERFLOW", "SAVEDFLOW"))
    page.click("#save")
    page.wait_for_selector("#status:has-text('Name the new mapping first')")
    assert not (folder / "saved-here.yaml").exists()
    page.fill("#save-name", "saved-here")
    page.click("#save")
    page.wait_for_selector("#status:has-text('saved saved-here.yaml')")
    assert "SAVEDFLOW" in (folder / "saved-here.yaml").read_text()
    page.screenshot(path=SHOTS / "playground-saved.png", full_page=True)

    posted = httpx.post(f"{base}/hooks/leads",
                        json={"id": "e-9", "phone": "+14155552671", "name": "Zoe"})
    event_id = posted.json()["event_id"]
    page.goto(f"{base}/admin/events/{event_id}")
    assert page.locator("#received").get_attribute("title").endswith("UTC")  # converted
    assert "rule 1: the fallback" in page.locator("td.rule").inner_text()
    page.screenshot(path=SHOTS / "event-page.png", full_page=True)
    page.click("#open-playground")
    page.wait_for_selector("#requests:has-text('14155552671')")
    assert "phone: body.phone" in page.input_value("#yaml")
    assert '"name":"Zoe"' in page.input_value("#body")  # byte-exact, as received
    assert "content-type: application/json" in page.input_value("#headers")
    page.screenshot(path=SHOTS / "playground-event.png", full_page=True)
    assert blocked == []


SCHEDULED = """\
phone: {path: body.phone, region: IN}
schedule: {delay: 1h, key: body.token}
quiet_hours: {from: "21:00", to: "09:00"}
cancel: {key: body.token, when: body.paid}
filter: "!(body.paid)"
flows: [{flow_key: NUDGE}]
"""


def test_the_playground_says_when_each_request_goes_as_of_the_arrival_time(browser, relay):
    """The Arrives at field (ISO 8601, UTC unless it says; epoch seconds) moves the preview's
    time: an hour's delay, then quiet hours in the recipient's zone; a cancelling body says
    what it cancels; a time that is no time is said, and nothing is tried."""
    base, _, _ = relay
    SHOTS.mkdir(parents=True, exist_ok=True)
    page, blocked = log_in(browser, base)
    page.goto(f"{base}/admin/playground?mapping=leads")
    page.fill("#yaml", SCHEDULED)
    page.fill("#body", '{"phone": "9812345678", "token": "t-1"}')
    page.fill("#now", "2026-12-03T10:00")  # no zone: UTC, 15:30 in India
    page.wait_for_selector("#times li:has-text('2026-12-03T11:00:00Z')")
    assert page.locator("#times li").inner_text() == (
        "request 1: 2026-12-03T11:00:00Z, in 1h (delay 1h)")
    page.fill("#now", "1796320800")  # 2026-12-03T18:00:00Z: 23:30 in India
    page.wait_for_selector("#times li:has-text('waits until 2026-12-04 09:00 IST')")
    assert page.locator("#times li").inner_text().startswith("request 1: 2026-12-04T03:30:00Z")
    page.screenshot(path=SHOTS / "playground-schedule.png", full_page=True)
    page.fill("#body", '{"token": "t-1", "paid": true}')
    page.wait_for_selector("#cancels li")
    assert page.locator("#cancels li").inner_text() == (
        "cancels key 't-1' of leads (this mapping) (pending deliveries now, and those "
        "arriving within 1d)")
    page.fill("#now", "next tuesday")
    page.wait_for_selector("#status:has-text('Arrives at: give ISO 8601')")
    assert blocked == []
