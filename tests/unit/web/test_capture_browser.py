"""The Capture page in a real browser (headless Chromium, Playwright): open a window, see a
posted sample appear, draft a mapping from it. Screenshots go to build/screenshots/."""

from __future__ import annotations

import json

import httpx

from tests.unit.web.test_console_browser import SHOTS, TOKEN, browser, relay  # noqa: F401

TYPEFORM = {"event_id": "01JDCAPTURE", "event_type": "form_response", "form_response": {
    "answers": [
        {"type": "text", "text": "Asha", "field": {"ref": "name", "type": "short_text"}},
        {"type": "phone_number", "phone_number": "+919812345678",
         "field": {"ref": "phone", "type": "phone_number"}},
        {"type": "email", "email": "asha@example.com", "field": {"ref": "email",
                                                                 "type": "email"}}]}}


def test_open_a_window_see_the_sample_and_draft_a_mapping(browser, relay):  # noqa: F811
    base, *_ = relay
    SHOTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page()
    blocked: list[str] = []
    page.on("console", lambda m: blocked.append(m.text) if "Content Security Policy" in m.text
            else None)
    page.goto(f"{base}/admin/login?next=/admin/capture")
    page.fill("input[name=token]", TOKEN)
    page.click("form button")
    page.wait_for_url("**/admin/capture")
    page.fill("#open input[name=name]", "newform")
    page.click("#open-window")
    assert "Capturing /hooks/newform" in page.content()
    assert page.locator("#windows td a:text-is('newform')").count() == 1

    body = json.dumps(TYPEFORM).encode()
    posted = httpx.post(f"{base}/hooks/newform", content=body, headers={
        "Content-Type": "application/json", "Typeform-Signature": "sha256=abc"})
    assert posted.status_code == 202, posted.text  # RELAY_CAPTURE_REFRESH=0: seen at once
    sample_id = posted.json()["sample_id"]

    # The page refreshes itself: the sample appears, and the window's count, no reload.
    page.wait_for_selector(f"#samples a:text-is('{sample_id}')", timeout=15000)
    assert page.locator("#windows tr:has-text('newform') td").nth(2).inner_text() == "1"
    assert page.locator("#samples time").first.get_attribute("title").endswith("UTC")
    page.screenshot(path=SHOTS / "capture.png", full_page=True)
    page.click(f"#samples a:text-is('{sample_id}')")
    assert page.locator("#signature").inner_text() == "unchecked"
    page.click("#draft")
    drafted = page.locator("#drafted").inner_text()
    assert "source: typeform" in drafted
    assert "answers[?field.ref=='phone'].phone_number | [0]" in drafted
    assert "FILL IN" in drafted and "tests:" in drafted
    page.screenshot(path=SHOTS / "capture-draft.png", full_page=True)
    download = httpx.get(f"{base}/admin/capture/samples/{sample_id}/draft.yaml",
                         headers={"Authorization": f"Bearer {TOKEN}"})
    assert download.status_code == 200 and "source: typeform" in download.text
    assert blocked == []
