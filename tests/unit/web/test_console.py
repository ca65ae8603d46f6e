"""The console's pages: an event's headline and attempt counts, error pages, and the phone
filter, and the masking of personal data."""

from __future__ import annotations

import re

import pytest

from relay.web.console import mask
from tests.support.admin_app import BEARER, make_admin


@pytest.fixture
def admin(tmp_path):
    return make_admin(tmp_path)


def _state(page: str) -> str:
    return re.search(r'<small id="state" class="s-(\w+)">(\w+)</small>', page)[2]


def _listed_state(page: str, event_id: int) -> str:
    row = re.search(rf'href="/admin/events/{event_id}">{event_id}</a>.*?</tr>', page, re.S)[0]
    return re.search(r'<td class="s-\w+">(\w+)</td>', row)[1]


def test_the_event_headline_shows_the_state_the_list_shows(admin):
    dead = admin.dead_delivery()
    pending = admin.client().post("/hooks/leads", json={"phone": "+919812345679"}).get_json()[
        "event_id"]
    failed = admin.client().post("/hooks/leads", json={"phone": "nope"}).get_json()["event_id"]
    browser = admin.logged_in()
    listing = browser.get("/admin/").get_data(as_text=True)
    for event_id, state in ((dead, "dead"), (pending, "pending"), (failed, "failed")):
        assert _listed_state(listing, event_id) == state
        assert _state(browser.get(f"/admin/events/{event_id}").get_data(as_text=True)) == state


def test_each_delivery_shows_every_attempt_after_a_replay(admin):
    """A replay sets the delivery's `attempts` back to 0; the page counts the attempt log."""
    event_id = admin.dead_delivery()
    browser = admin.logged_in()

    def headline() -> str:
        page = browser.get(f"/admin/events/{event_id}").get_data(as_text=True)
        return re.sub(r"<[^>]+>", "", re.search(r'<h3 id="delivery-\d+">(.*?)</h3>', page)[1])

    assert headline().endswith("dead after 1 attempt(s)")
    assert admin.client().post(f"/api/events/{event_id}/replay", headers=BEARER).get_json()["ok"]
    assert headline().endswith("pending after 1 attempt(s)")
    admin.attempt("delivered", 200)
    assert headline().endswith("delivered after 2 attempt(s)")
    assert _state(browser.get(f"/admin/events/{event_id}").get_data(as_text=True)) == (
        "delivered")


def test_console_errors_are_pages_with_a_way_back(admin):
    browser = admin.logged_in()
    for answer, status, message in (
            (browser.get("/admin/events/999"), 404, "no event 999"),
            (browser.get("/admin/no-such-page"), 404, "not found"),
            (browser.post("/admin/events/1/replay"), 400, "the form expired"),
            (browser.put("/admin/playground"), 405, "not allowed")):
        page = answer.get_data(as_text=True)
        assert answer.status_code == status and answer.mimetype == "text/html"
        assert message in page.lower() or message in page
        assert '<a id="back" href="/admin/">Back to Events</a>' in page
        assert "<header>" in page and "Log out" in page  # the console's layout
    api = admin.client().get("/api/events/999", headers=BEARER)
    assert api.status_code == 404 and api.get_json() == {"error": "no event 999"}


@pytest.mark.parametrize("typed", ["09822012345", "098220 12345", "9822012345",
                                   "+91 98220-12345", "919822012345", "2012345"])
def test_the_phone_filter_finds_a_number_as_a_person_types_it(admin, typed):
    """Stored as 919822012345; found however a person in the mapping's region types it
    (with the trunk 0, spaces, the country code), and by any run of its digits."""
    wanted = admin.client().post("/hooks/leads", json={"phone": "+919822012345"}).get_json()[
        "event_id"]
    other = admin.client().post("/hooks/leads", json={"phone": "+919812345678"}).get_json()[
        "event_id"]
    browser = admin.logged_in()
    for query in ({"phone": typed}, {"phone": typed, "mapping": "leads"}):
        page = browser.get("/admin/", query_string=query).get_data(as_text=True)
        assert f'href="/admin/events/{wanted}"' in page
        assert f'href="/admin/events/{other}"' not in page


def test_forms_need_the_csrf_token(admin):
    """A POST without the page's CSRF token is refused."""
    client = admin.logged_in()
    assert client.post("/admin/events/1/replay", data={}).status_code == 400


class TestMask:
    def test_phones_keep_their_last_four_digits_and_emails_their_first_letter(self):
        assert mask("call +91 98123 45678 or asha@example.com", True) == (
            "call •••••••••••5678 or a•••@example.com")

    def test_off_it_changes_nothing(self):
        assert mask("asha@example.com", False) == "asha@example.com"
        assert mask(None, True) is None  # not text: as it is

    def test_relay_mask_pii_masks_the_console_pages(self, tmp_path):
        """RELAY_MASK_PII masks phone numbers on the console's pages."""
        admin = make_admin(tmp_path, mask_pii=True)
        event_id = admin.client().post("/hooks/leads",
                                       json={"phone": "+919812345678"}).get_json()["event_id"]
        page = admin.logged_in().get(f"/admin/events/{event_id}").get_data(as_text=True)
        assert "919812345678" not in page
        assert "•5678" in page
