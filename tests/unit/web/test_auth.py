"""Who gets into /admin and /api: the session key, the token's length, the login limit,
sessions that end on the server, CSRF for the API, and a login page that hands out nothing."""

from __future__ import annotations

import hashlib

import pytest
import sqlalchemy as sa
from itsdangerous import BadSignature, URLSafeTimedSerializer

from relay.config import Settings
from relay.errors import RelayError
from relay.store.sessions import session_hash
from relay.store.tables import console_sessions, instance
from relay.web.api import FailureLimit
from relay.web.app import create_app
from tests.support.admin_app import BEARER, TOKEN, make_admin

COOKIE = "relay_console"


def _cookie(client) -> str:
    cookie = client.get_cookie(COOKIE)
    assert cookie is not None
    return cookie.value


def _loads(cookie: str, key: str | bytes) -> dict:
    """The cookie's content, as Flask's signed session checks it with `key`."""
    return URLSafeTimedSerializer(key, salt="cookie-session",
                                  signer_kwargs={"key_derivation": "hmac",
                                                 "digest_method": hashlib.sha1}).loads(cookie)


def _rows(admin, table) -> list[dict]:
    with admin.store.engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(table)).mappings()]


def test_sessions_are_signed_with_a_random_key_kept_in_the_database(tmp_path):
    """The cookie verifies with the deployment's random key (one row in `instance`, shared
    by every process on the database), never with one derived from the admin token."""
    admin = make_admin(tmp_path)
    cookie = _cookie(admin.logged_in())
    (row,) = _rows(admin, instance)
    assert row["key"] == "session_key" and len(row["value"]) >= 32
    assert TOKEN not in row["value"]
    assert "id" in _loads(cookie, row["value"])
    old_key = hashlib.sha256(b"relay console " + TOKEN.encode()).digest()
    with pytest.raises(BadSignature):
        _loads(cookie, old_key)
    # A second web process of the deployment takes the same key and the same session.
    other = make_admin(tmp_path)
    client = other.client()
    client.set_cookie(COOKIE, cookie)
    assert client.get("/admin/").status_code == 200
    assert len(_rows(other, instance)) == 1


def test_relay_secret_key_signs_sessions_when_set(tmp_path):
    """With RELAY_SECRET_KEY the cookie is signed with it and no key is stored."""
    admin = make_admin(tmp_path, secret_key="s" * 40)
    cookie = _cookie(admin.logged_in())
    assert "csrf" in _loads(cookie, "s" * 40)
    assert _rows(admin, instance) == []


def test_create_app_refuses_a_short_admin_token(tmp_path):
    """A token under 32 characters is refused however the settings were made."""
    with pytest.raises(RelayError, match="needs at least 32"):
        create_app(Settings(database_url=f"sqlite:///{tmp_path / 'r.db'}",
                            mappings=str(tmp_path), admin_token="x" * 31))


def test_login_attempts_are_limited_per_address(tmp_path):
    """Five wrong tokens from an address in a minute: the next wrong one, form or bearer, is
    answered 429 with Retry-After, until the minute has passed; other addresses are not held
    up; and the right token always passes, so that whoever shares the admin's address (all
    behind one proxy) cannot lock the admin out."""
    admin = make_admin(tmp_path)
    now = [1000.0]
    admin.app.extensions["relay"]["failure_limit"] = FailureLimit(clock=lambda: now[0])
    client = admin.client()
    attacker = {"REMOTE_ADDR": "203.0.113.7"}
    for _ in range(4):
        wrong = client.post("/admin/login", data={"token": "guess"}, environ_base=attacker)
        assert wrong.status_code == 200
        assert "That is not the admin token." in wrong.get_data(as_text=True)
    assert client.get("/api/events", headers={"Authorization": "Bearer guess"},
                      environ_base=attacker).status_code == 401
    limited = client.post("/admin/login", data={"token": "guess"}, environ_base=attacker)
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "60"
    assert "too many wrong admin tokens" in limited.get_data(as_text=True)
    api = client.get("/api/events", headers={"Authorization": "Bearer guess"},
                     environ_base=attacker)
    assert api.status_code == 429 and int(api.headers["Retry-After"]) <= 60
    assert api.get_json()["error"].startswith("too many wrong admin tokens")
    assert admin.logged_in("198.51.100.1").get("/admin/").status_code == 200
    now[0] += 59
    assert client.post("/admin/login", data={"token": "guess"},
                       environ_base=attacker).headers["Retry-After"] == "1"
    assert client.get("/api/events", headers=BEARER, environ_base=attacker).status_code == 200
    assert client.post("/admin/login", data={"token": TOKEN},
                       environ_base=attacker).status_code == 302


def test_failure_counts_stay_bounded():
    """However many addresses guess, the limiter keeps at most `max_clients` of them."""
    limit = FailureLimit(max_clients=3, clock=lambda: 0.0)
    for n in range(10):
        limit.failed(f"10.0.0.{n}")
    assert len(limit._failures) == 3
    assert limit.retry_after("10.0.0.9") == 0  # one failure is not a lock-out


def test_a_cookie_copied_before_logout_does_not_work_after_it(tmp_path):
    """Logging out deletes the session's row: the same cookie, replayed, is logged out."""
    admin = make_admin(tmp_path)
    client = admin.logged_in()
    saved = _cookie(client)
    assert [r["id"] for r in _rows(admin, console_sessions)] == [
        session_hash(_loads(saved, _rows(admin, instance)[0]["value"])["id"])]
    assert client.post("/admin/logout", data={"csrf": admin.csrf(client)}).status_code == 302
    assert _rows(admin, console_sessions) == []
    replay = admin.client()
    replay.set_cookie(COOKIE, saved)
    assert replay.get("/admin/").headers["Location"].startswith("/admin/login")
    assert replay.get("/api/events").status_code == 401


def test_logout_needs_the_csrf_token(tmp_path):
    """A cross-site form cannot log a person out (nor do anything else)."""
    admin = make_admin(tmp_path)
    client = admin.logged_in()
    assert client.post("/admin/logout").status_code == 400
    assert client.get("/admin/").status_code == 200


def test_expired_sessions_do_not_work_and_are_deleted_at_login(tmp_path):
    admin = make_admin(tmp_path)
    sessions = admin.store
    sessions.open_session("old", 1000.0, 60)
    assert not sessions.session_alive("old", 1061.0)
    assert sessions.session_alive("old", 1059.0)
    admin.logged_in()
    assert session_hash("old") not in [r["id"] for r in _rows(admin, console_sessions)]


def test_changing_the_token_ends_every_session(tmp_path):
    """A session opened under one token is not one under the next."""
    cookie = _cookie(make_admin(tmp_path).logged_in())
    rotated = make_admin(tmp_path)
    rotated.app.extensions["relay"]["settings"] = Settings(
        database_url=rotated.store.url, mappings=str(tmp_path), admin_token="n" * 40)
    client = rotated.client()
    client.set_cookie(COOKIE, cookie)
    assert client.get("/api/events").status_code == 401


def test_api_posts_with_the_console_cookie_need_the_csrf_token(tmp_path):
    """With the cookie, GETs work; POSTs need X-CSRF-Token equal to the session's token.
    Bearer requests need none."""
    admin = make_admin(tmp_path)
    client = admin.logged_in()
    assert client.get("/api/events").status_code == 200
    for headers in ({}, {"X-CSRF-Token": ""}, {"X-CSRF-Token": "wrong"}):
        refused = client.post("/api/replay", json={"dead": True}, headers=headers)
        assert refused.status_code == 403
        assert refused.get_json()["error"] == "missing or wrong CSRF token"
    ok = client.post("/api/replay", json={"dead": True},
                     headers={"X-CSRF-Token": admin.csrf(client)})
    assert ok.status_code == 200
    assert admin.client().post("/api/replay", json={"dead": True},
                               headers=BEARER).status_code == 200


def test_the_anonymous_login_page_sets_no_cookie(tmp_path):
    """Nothing a visitor is handed before logging in is signed: no cookie to test token
    guesses against, nothing to mistake for a login."""
    client = make_admin(tmp_path).client()
    for answer in (client.get("/admin/login"), client.get("/admin/"),
                   client.post("/admin/login", data={"token": "guess"})):
        assert "Set-Cookie" not in answer.headers
    assert client.get_cookie(COOKIE) is None
