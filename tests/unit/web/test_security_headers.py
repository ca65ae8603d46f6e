"""Console pages and API answers tell browsers to run nothing, frame nothing and leak no
address; everything Flask answers says nosniff."""

from __future__ import annotations

import pytest

from tests.support.admin_app import BEARER, make_admin

CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; "
       "frame-ancestors 'none'; base-uri 'none'")


@pytest.fixture
def admin(tmp_path):
    return make_admin(tmp_path)


def test_console_and_api_answers_carry_security_headers(admin):
    browser = admin.logged_in()
    answers = [admin.client().get("/admin/login"), admin.client().get("/admin/"),
               browser.get("/admin/"), browser.get("/admin/events/999"),
               browser.get("/admin/playground"),
               admin.client().get("/api/events", headers=BEARER),
               admin.client().get("/api/events"), admin.client().get("/api/nothing-here",
                                                                     headers=BEARER)]
    for answer in answers:
        assert answer.headers["Content-Security-Policy"] == CSP, answer.request.path
        assert answer.headers["X-Frame-Options"] == "DENY"
        assert answer.headers["Referrer-Policy"] == "no-referrer"
        assert answer.headers["X-Content-Type-Options"] == "nosniff"


def test_every_flask_answer_says_nosniff(admin):
    for path in ("/healthz", "/readyz", "/metrics"):
        assert admin.client().get(path).headers["X-Content-Type-Options"] == "nosniff"
