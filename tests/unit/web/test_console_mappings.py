"""The console's Mappings page: the sender's URL, the state and the last day's figures."""

from __future__ import annotations

import re

from tests.support.admin_app import make_admin


def _row(page: str, name: str) -> str:
    return re.search(rf'<tr data-mapping="{name}".*?</tr>', page, re.S)[0]


def test_it_shows_the_url_the_state_and_the_counts(tmp_path):
    """Without RELAY_PUBLIC_URL the URL is the page's own host, and the page says so; the
    counts are the mapping's accepted and failed events and dead deliveries."""
    admin = make_admin(tmp_path)
    admin.dead_delivery()
    admin.client().post("/hooks/leads", json={"phone": "+919812345679"})
    admin.client().post("/hooks/leads", json={"phone": "nope"})
    page = admin.logged_in().get("/admin/mappings")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    row = _row(text, "leads")
    assert "<code class=\"url\">http://localhost/hooks/leads</code>" in row
    assert 'id="url-note"' in text and "RELAY_PUBLIC_URL is not set" in text
    counts = dict(re.findall(r'<td class="n-(\w+)[^"]*">(\d+)</td>', row))
    assert counts == {"accepted": "2", "failed": "1", "dead": "1"}
    assert "never" not in row  # it has a last event


def test_the_public_url_wins_and_the_page_says_nothing_of_guesses(tmp_path):
    admin = make_admin(tmp_path, public_url="https://relay.example.com/")
    text = admin.logged_in().get("/admin/mappings").get_data(as_text=True)
    assert "https://relay.example.com/hooks/leads" in _row(text, "leads")
    assert 'id="url-note"' not in text
    assert "never" in _row(text, "leads")


def test_it_needs_a_login(tmp_path):
    answer = make_admin(tmp_path).client().get("/admin/mappings")
    assert answer.status_code == 302 and "/admin/login" in answer.headers["Location"]
