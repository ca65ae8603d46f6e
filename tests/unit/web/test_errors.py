"""Every error the web process answers has one shape, `{"error": ..., "hint": ...}`: JSON
under /api and elsewhere, a page in the console's layout under /admin."""

from __future__ import annotations

import logging

import pytest

from relay.errors import StoreUnavailable
from relay.web.errors import Refusal, error_body, json_error
from tests.support.admin_app import BEARER, make_admin


class TestErrorBody:
    def test_the_hint_comes_last_and_only_when_there_is_one(self):
        assert error_body("no event 7") == {"error": "no event 7"}
        assert error_body("no event 7", "") == {"error": "no event 7"}
        body = error_body("unmappable", "fix it", errors=[{"field": "phone"}])
        assert list(body) == ["error", "errors", "hint"]  # the order of the answer's bytes
        assert body["hint"] == "fix it"


def _raiser(exc: Exception):
    def view():
        raise exc
    return view


@pytest.fixture
def admin(tmp_path):
    admin = make_admin(tmp_path)
    # Views that fail on purpose, on both faces of the app, to see what the handlers answer.
    for prefix in ("/api", "/admin"):
        admin.app.add_url_rule(f"{prefix}/test/store", f"{prefix}-store",
                               _raiser(StoreUnavailable("the database is locked")))
        admin.app.add_url_rule(f"{prefix}/test/bug", f"{prefix}-bug",
                               _raiser(ZeroDivisionError("secret detail")))
        admin.app.add_url_rule(f"{prefix}/test/refusal", f"{prefix}-refusal", _raiser(
            Refusal(429, "slow down", "wait a bit", {"Retry-After": "7"})))
    return admin


class TestHandlers:
    def test_json_error_is_the_compact_json_flask_answers(self, admin):
        with admin.app.test_request_context("/api/events"):
            answer = json_error(400, "limit must be a whole number", "from 1 to 500",
                                {"X-Extra": "1"})
        assert answer.status_code == 400
        assert answer.get_data() == (b'{"error":"limit must be a whole number",'
                                     b'"hint":"from 1 to 500"}\n')
        assert answer.headers["Content-Type"] == "application/json"
        assert answer.headers["X-Extra"] == "1"

    def test_a_database_outage_is_503_with_retry_after(self, admin, caplog):
        with caplog.at_level(logging.ERROR, "relay.web"):
            answer = admin.client().get("/api/test/store", headers=BEARER)
        assert answer.status_code == 503
        assert answer.headers["Retry-After"] == "5"
        assert answer.get_json() == {"error": "the database is unavailable right now",
                                     "hint": "retry later"}
        assert "the database is locked" in caplog.text  # the log says why; the answer not

    def test_a_bug_is_500_telling_nothing_of_it(self, admin, caplog):
        with caplog.at_level(logging.ERROR, "relay.web"):
            answer = admin.client().get("/api/test/bug", headers=BEARER)
        assert answer.status_code == 500
        assert answer.get_json() == {"error": "internal error; the relay's log has the details"}
        assert "secret detail" not in answer.get_data(as_text=True)
        assert "ZeroDivisionError" in caplog.text

    def test_a_refusal_keeps_its_hint_and_headers(self, admin):
        answer = admin.client().get("/api/test/refusal", headers=BEARER)
        assert answer.status_code == 429
        assert answer.headers["Retry-After"] == "7"
        assert answer.get_json() == {"error": "slow down", "hint": "wait a bit"}

    def test_werkzeug_errors_keep_their_headers_with_our_body(self, admin):
        answer = admin.client().delete("/api/events", headers=BEARER)
        assert answer.status_code == 405
        assert set(answer.headers["Allow"].split(", ")) == {"GET", "HEAD", "OPTIONS"}
        assert list(answer.get_json()) == ["error"]
        assert admin.client().get("/nothing-here").get_json()["error"].startswith(
            "The requested URL was not found")

    def test_under_admin_errors_are_pages(self, admin):
        client = admin.logged_in()
        for path, status in (("/admin/test/store", 503), ("/admin/test/bug", 500),
                             ("/admin/test/refusal", 429), ("/admin/nothing-here", 404)):
            answer = client.get(path)
            assert answer.status_code == status, path
            assert answer.headers["Content-Type"].startswith("text/html"), path
            assert f"<h1>{status}</h1>" in answer.get_data(as_text=True), path
        assert client.get("/admin/test/store").headers["Retry-After"] == "5"
        assert client.get("/admin/test/refusal").headers["Retry-After"] == "7"
