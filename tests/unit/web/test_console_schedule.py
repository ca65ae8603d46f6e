"""The console's scheduled and cancelled deliveries: the event page says when and why, the
cancel key and who cancelled; Send now and Cancel are CSRF-guarded forms that come back to
the page with a notice; the events list filters and shows both states."""

from __future__ import annotations

import html
import re
import time

import pytest

from relay.mapping import Result
from relay.mapping.model import Cancellation
from relay.model import Received
from relay.store.display import utc_text
from tests.support.admin_app import make_admin

LATER = """
phone: {path: body.phone, region: IN}
schedule:
  delay: 1h
  key: body.checkout
flows:
  - flow_key: ABC
"""


@pytest.fixture
def admin(tmp_path):
    admin = make_admin(tmp_path, LATER)
    yield admin
    admin.store.dispose()


def post(admin, checkout: str = "chk-1") -> tuple[int, int]:
    """A webhook due in an hour: its event's id and its delivery's."""
    event_id = admin.client().post("/hooks/leads", json={
        "phone": "+919812345678", "checkout": checkout}).get_json()["event_id"]
    return event_id, admin.store.event(event_id)["deliveries"][0]["id"]


def text(page: str) -> str:
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page)))


def test_a_scheduled_delivery_says_when_why_and_its_key(admin):
    event_id, delivery_id = post(admin)
    page = admin.logged_in().get(f"/admin/events/{event_id}").get_data(as_text=True)
    d = admin.store.delivery(delivery_id)
    assert '<small id="state" class="s-scheduled">scheduled</small>' in page
    schedule = text(re.search(r'<td class="schedule">(.*?)</td>', page, re.S)[1])
    assert schedule == f"scheduled for {utc_text(d['next_at'])} UTC — {d['schedule']}"
    assert '<td class="cancel-key"><code>chk-1</code></td>' in page
    assert 'class="send-now">Send now</button>' in page and 'class="cancel">Cancel</button>' in page
    assert f'action="/admin/deliveries/{delivery_id}/cancel"' in page


def test_cancel_comes_back_with_a_notice_and_the_page_says_cancelled(admin):
    event_id, delivery_id = post(admin)
    browser = admin.logged_in()
    answer = browser.post(f"/admin/deliveries/{delivery_id}/cancel",
                          data={"csrf": admin.csrf(browser)})
    assert answer.status_code == 302
    assert answer.headers["Location"].endswith(f"/admin/events/{event_id}#delivery-{delivery_id}")
    page = browser.get(f"/admin/events/{event_id}").get_data(as_text=True)
    assert f"Delivery {delivery_id} is cancelled: it will never be called." in page
    assert '<small id="state" class="s-cancelled">cancelled</small>' in page
    assert '<td class="cancelled">cancelled by an operator</td>' in page
    assert "Send now</button>" not in page and "Never called: cancelled." in page
    again = browser.post(f"/admin/deliveries/{delivery_id}/send-now",
                         data={"csrf": admin.csrf(browser)}, follow_redirects=True)
    assert (f"Delivery {delivery_id} was not changed: already cancelled by an operator."
            in again.get_data(as_text=True))
    assert admin.store.delivery(delivery_id)["status"] == "cancelled"


def test_send_now_makes_it_due(admin):
    _, delivery_id = post(admin)
    browser = admin.logged_in()
    page = browser.post(f"/admin/deliveries/{delivery_id}/send-now",
                        data={"csrf": admin.csrf(browser)},
                        follow_redirects=True).get_data(as_text=True)
    assert f"Delivery {delivery_id} is due now" in page
    assert '<small id="state" class="s-pending">pending</small>' in page
    assert '<td class="schedule">sent now by an operator</td>' in page
    (claimed,) = admin.store.claim("w", 5, time.time(), 60)
    assert claimed.id == delivery_id


def test_the_forms_need_the_csrf_token_and_a_known_id(admin):
    _, delivery_id = post(admin)
    browser = admin.logged_in()
    assert browser.post(f"/admin/deliveries/{delivery_id}/cancel", data={}).status_code == 400
    assert admin.store.delivery(delivery_id)["status"] == "pending"
    missing = browser.post("/admin/deliveries/999/cancel", data={"csrf": admin.csrf(browser)})
    assert missing.status_code == 404


def test_in_flight_shows_no_buttons(admin):
    event_id, _ = post(admin)
    admin.store.claim("w", 5, time.time() + 3601, 60)
    page = admin.logged_in().get(f"/admin/events/{event_id}").get_data(as_text=True)
    assert "Send now</button>" not in page and "In flight" in page


def test_a_webhook_cancellation_links_its_event(admin):
    """"cancelled by event N" links event N's page."""
    event_id, _ = post(admin)
    canceller = admin.store.accept(Received("leads", b"{}", {}, {}, Result(
        cancels=(Cancellation("chk-1", (), 3600.0),)), time.time())).event_id
    page = admin.logged_in().get(f"/admin/events/{event_id}").get_data(as_text=True)
    assert (f'<td class="cancelled">cancelled by <a href="/admin/events/{canceller}">'
            f"event {canceller}</a></td>") in page


def test_the_list_filters_and_shows_both_states(admin):
    scheduled, _ = post(admin, "a")
    cancelled, cancelled_delivery = post(admin, "b")
    assert admin.store.cancel_delivery(cancelled_delivery, time.time())
    browser = admin.logged_in()
    listing = browser.get("/admin/").get_data(as_text=True)
    for event_id, state in ((scheduled, "scheduled"), (cancelled, "cancelled")):
        row = re.search(rf'href="/admin/events/{event_id}">{event_id}</a>.*?</tr>', listing,
                        re.S)[0]
        assert re.search(r'<td class="s-\w+">(\w+)</td>', row)[1] == state
    assert "1 scheduled, the first for" in listing and "(1 cancelled)" in listing
    assert "<option selected>scheduled</option>" in browser.get(
        "/admin/?status=scheduled").get_data(as_text=True)
    for status, wanted, other in (("scheduled", scheduled, cancelled),
                                  ("cancelled", cancelled, scheduled)):
        page = browser.get("/admin/", query_string={"status": status}).get_data(as_text=True)
        assert f'href="/admin/events/{wanted}"' in page
        assert f'href="/admin/events/{other}"' not in page


def test_a_delivery_sent_at_once_is_unchanged(tmp_path):
    """No schedule row, no cancel key, for a mapping without schedule:."""
    admin = make_admin(tmp_path / "plain")
    event_id = admin.client().post("/hooks/leads", json={"phone": "+919812345678"}).get_json()[
        "event_id"]
    page = admin.logged_in().get(f"/admin/events/{event_id}").get_data(as_text=True)
    assert 'class="schedule"' not in page and 'class="cancel-key"' not in page
    assert "Send now</button>" in page  # pending: it can still be cancelled or hurried
    admin.store.dispose()




def test_the_dashboard_counts_scheduled_and_cancelled(admin):
    """Scheduled deliveries are named beside the queue, not as its age; cancelled ones too,
    each linking its filtered list."""
    post(admin, "a")
    _, dropped = post(admin, "b")
    assert admin.store.cancel_delivery(dropped, time.time())
    page = admin.logged_in().get("/admin/dashboard").get_data(as_text=True)
    assert '<strong id="pending">1</strong> pending, the oldest 0 s' in page
    assert '<a id="scheduled" href="/admin/?status=scheduled">1 scheduled</a>' in page
    assert '<a id="cancelled" href="/admin/?status=cancelled">1 cancelled</a>' in page
