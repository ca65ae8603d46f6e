"""The dashboard page and the events list's search (the charts' SQL: tests/unit/store/
test_charts.py; in a browser: test_console_browser.py)."""

from __future__ import annotations

import re

import pytest

from relay.web.console.svg import Chart, nice_ceiling, render
from tests.support.admin_app import make_admin


@pytest.fixture
def admin(tmp_path):
    return make_admin(tmp_path)


class TestSvg:
    def test_round_tops_for_the_y_axis(self):
        assert [nice_ceiling(v) for v in (0, 0.3, 1, 3, 7, 11, 240, 2600)] == [
            1, 0.5, 1, 5, 7.5, 15, 250, 5000]
        assert [nice_ceiling(v, whole=True) for v in (0.3, 1.25, 3, 7, 11, 240)] == [
            1, 2, 5, 10, 20, 500]

    def test_names_are_escaped_and_bars_stack(self):
        """A mapping name is text in the SVG, never markup; stacked bars reach the sum."""
        svg = render(Chart("t", "webhooks", "bars", ["00:00", ""], ["a", "b"],
                           {"<script>x": [1, 0], "b": [3, None]}))
        assert "<script>x" not in svg and "&lt;script&gt;x" in svg
        assert svg.count('class="bar"') == 2
        assert '>4</text>' in svg and '>1</text>' in svg  # ticks of 1 up to 1 + 3

    def test_lines_leave_gaps_where_nothing_was_measured(self):
        svg = render(Chart("t", "ms", "lines", ["", "", ""], ["a", "b", "c"],
                           {"p50": [10.0, None, 30.0]}))
        assert svg.count('class="point"') == 2
        assert "nothing in this window" not in svg

    def test_an_empty_window_says_so(self):
        svg = render(Chart("t", "ms", "lines", [""] * 3, ["a"] * 3, {"p50": [None] * 3}))
        assert "nothing in this window" in svg
        queue = render(Chart("t", "pending", "lines", [""] * 3, ["a"] * 3, {"q": [0, 0, 0]}))
        assert "nothing in this window" not in queue  # zero pending is a measure


def test_the_dashboard_draws_four_charts_from_the_store(admin):
    """Webhooks in, a dead delivery and its call: counted in the 24-hour and 7-day views."""
    admin.dead_delivery()
    admin.client().post("/hooks/leads", json={"phone": "+919812345679"})
    browser = admin.logged_in()
    for window in ("24h", "7d"):
        answer = browser.get("/admin/dashboard", query_string={"window": window})
        page = answer.get_data(as_text=True)
        assert answer.status_code == 200
        assert page.count("<svg") == 4
        webhooks = re.search(r'id="chart-webhooks".*?</section>', page, re.S)[0]
        assert "leads <strong>2</strong>" in webhooks
        outcomes = re.search(r'id="chart-outcomes".*?</section>', page, re.S)[0]
        assert "dead <strong>1</strong>" in outcomes and "delivered <strong>0</strong>" in outcomes
        assert '<strong id="pending">1</strong>' in page
    assert 'href="/admin/dashboard"' in page  # the nav link
    assert admin.client().get("/admin/dashboard").status_code == 302  # behind the login


def test_an_unknown_window_is_the_last_24_hours(admin):
    page = admin.logged_in().get("/admin/dashboard?window=<x>").get_data(as_text=True)
    assert 'aria-current="page">24h</a>' in page


class TestEventsSearch:
    def test_text_in_the_body_finds_the_event(self, admin):
        asha = admin.client().post("/hooks/leads", json={
            "phone": "+919822012345", "email": "asha@example.com"}).get_json()["event_id"]
        ravi = admin.client().post("/hooks/leads", json={
            "phone": "+919822012346", "email": "ravi@example.com"}).get_json()["event_id"]
        page = admin.logged_in().get("/admin/", query_string={"q": "ASHA@example"}).get_data(
            as_text=True)
        assert f'href="/admin/events/{asha}"' in page
        assert f'href="/admin/events/{ravi}"' not in page
        assert 'value="ASHA@example"' in page  # the filter keeps what was typed

    def test_a_too_short_text_is_a_message_not_an_error(self, admin):
        answer = admin.logged_in().get("/admin/", query_string={"q": "a%"})
        assert answer.status_code == 200
        assert "search for at least 3 characters" in answer.get_data(as_text=True)

    def test_the_list_loads_its_refresh_script(self, admin):
        page = admin.logged_in().get("/admin/").get_data(as_text=True)
        assert '<script src="/admin/static/refresh.js" defer></script>' in page
        script = admin.logged_in().get("/admin/static/refresh.js")
        assert script.status_code == 200 and b"setInterval" in script.data
        script.close()
