"""Who gets into /admin and /api (off without RELAY_ADMIN_TOKEN, behind it when set; /hooks
never): the session key, the login limit,
sessions that end on the server, CSRF for the API, a login page that hands out nothing, and
the security headers of every answer."""

from __future__ import annotations

import hashlib

import pytest
import sqlalchemy as sa
from itsdangerous import BadSignature, URLSafeTimedSerializer

from relay.config import Settings
from relay.sources.registry import Registry
from relay.store import open_store
from relay.store.sessions import session_hash
from relay.store.tables import console_sessions, instance
from relay.web.app import create_app
from relay.web.limits import RateLimit
from relay.web.services import services
from tests.support.admin_app import BEARER, TOKEN, make_admin

COOKIE = "relay_console"
CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; script-src 'self'; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")


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


def _session_keys(admin) -> list[str]:
    """The stored session keys (`instance` holds other values too: search's mark)."""
    return [r["value"] for r in _rows(admin, instance) if r["key"] == "session_key"]


PATHS = ["/api/events", "/api/events/1", "/api/nothing-here", "/admin", "/admin/events/1"]


@pytest.fixture
def make_client(tmp_path, write_mapping):
    """A client of an app whose admin token is `token` ("": the console and API off)."""
    folder = write_mapping(name="leads").parent

    def make(token=""):
        url = f"sqlite:///{tmp_path / 'relay.db'}"
        store = open_store(url)
        store.upgrade()
        registry = Registry(folder)
        registry.load()
        app = create_app(Settings(database_url=url, mappings=str(folder), admin_token=token),
                         store=store, registry=registry)
        return app.test_client()

    return make


@pytest.mark.parametrize("path", PATHS)
def test_off_without_a_token(make_client, path):
    """With no token configured, every admin path is 404 and says how to turn it on."""
    response = make_client().get(path)
    assert response.status_code == 404
    assert response.get_json()["hint"] == "set RELAY_ADMIN_TOKEN to turn them on"


BAD_HEADERS = [None, "Bearer", "Bearer wrong", f"Basic {TOKEN}", f"Bearer {TOKEN}x",
               "Bearer " + TOKEN[:-1]]


@pytest.mark.parametrize("path", [p for p in PATHS if p.startswith("/api")])
@pytest.mark.parametrize("header", BAD_HEADERS)
def test_a_token_is_required_for_the_api(make_client, path, header):
    """Without the right bearer token: 401, whatever the API path."""
    headers = {"Authorization": header} if header else {}
    response = make_client(TOKEN).get(path, headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize("path", [p for p in PATHS if p.startswith("/admin")])
@pytest.mark.parametrize("header", BAD_HEADERS)
def test_the_console_asks_to_log_in(make_client, path, header):
    """Without a session or the right token, console pages send to the login form."""
    headers = {"Authorization": header} if header else {}
    response = make_client(TOKEN).get(path, headers=headers)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/admin/login?next=")


@pytest.mark.parametrize(("asked", "went"), [
    ("/admin/../../x", "/admin/"), ("//evil.example/admin", "/admin/"),
    ("/admin\\..\\x", "/admin/"), ("/admin/../admin/x", "/admin/"),
    ("/admin/capture?name=a/../b", "/admin/capture?name=a/../b")])
def test_after_login_the_console_and_only_it(make_client, asked, went):
    """`next` goes back to a console page, never off it by .. or a second slash."""
    answer = make_client(TOKEN).post("/admin/login", data={"token": TOKEN, "next": asked})
    assert answer.headers["Location"] == went


def test_login_with_the_token_only(make_client):
    """The login form takes the token and nothing else; a session then opens the console."""
    client = make_client(TOKEN)
    wrong = client.post("/admin/login", data={"token": "nope"})
    assert wrong.status_code == 200
    assert b"That is not the admin token." in wrong.data
    assert client.get("/admin/").status_code == 302
    ok = client.post("/admin/login", data={"token": TOKEN, "next": "https://evil.example/"})
    assert ok.headers["Location"] == "/admin/"
    cookie = ok.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Secure" in client.post("/admin/login", data={"token": TOKEN},
                                   base_url="http://relay.example.com").headers["Set-Cookie"]
    assert client.get("/admin/").status_code == 200
    assert client.get("/api/events").status_code == 200  # the session works for the API too


def test_hooks_need_no_token(make_client):
    """Senders never need the admin token."""
    response = make_client(TOKEN).post("/hooks/leads", json={"phone": "+919812345678"})
    assert response.status_code == 202


def test_sessions_are_signed_with_a_random_key_kept_in_the_database(tmp_path):
    """The cookie verifies with the deployment's random key (one row in `instance`, shared
    by every process on the database), never with one derived from the admin token."""
    admin = make_admin(tmp_path)
    cookie = _cookie(admin.logged_in())
    (key,) = _session_keys(admin)
    assert len(key) >= 32 and TOKEN not in key
    assert "id" in _loads(cookie, key)
    old_key = hashlib.sha256(b"relay console " + TOKEN.encode()).digest()
    with pytest.raises(BadSignature):
        _loads(cookie, old_key)
    # A second web process of the deployment takes the same key and the same session.
    other = make_admin(tmp_path)
    client = other.client()
    client.set_cookie(COOKIE, cookie)
    assert client.get("/admin/").status_code == 200
    assert _session_keys(other) == [key]


def test_relay_secret_key_signs_sessions_when_set(tmp_path):
    """With RELAY_SECRET_KEY the cookie is signed with it and no key is stored."""
    admin = make_admin(tmp_path, secret_key="s" * 40)
    cookie = _cookie(admin.logged_in())
    assert "csrf" in _loads(cookie, "s" * 40)
    assert _session_keys(admin) == []


def test_login_attempts_are_limited_per_address(tmp_path):
    """Five wrong tokens from an address in a minute: the next wrong one, form or bearer, is
    answered 429 with Retry-After, until the minute has passed; other addresses are not held
    up; and the right token always passes, so that whoever shares the admin's address (all
    behind one proxy) cannot lock the admin out."""
    admin = make_admin(tmp_path)
    now = [1000.0]
    services(admin.app).login_limit = RateLimit(5, 60.0, clock=lambda: now[0])
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


def test_a_cookie_copied_before_logout_does_not_work_after_it(tmp_path):
    """Logging out deletes the session's row: the same cookie, replayed, is logged out."""
    admin = make_admin(tmp_path)
    client = admin.logged_in()
    saved = _cookie(client)
    assert [r["id"] for r in _rows(admin, console_sessions)] == [
        session_hash(_loads(saved, _session_keys(admin)[0])["id"])]
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
    services(rotated.app).settings = Settings(
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


def test_console_and_api_answers_carry_security_headers(tmp_path):
    """Console pages and API answers tell browsers to run nothing, frame nothing and leak
    no address."""
    admin = make_admin(tmp_path)
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


def test_every_flask_answer_says_nosniff(tmp_path):
    admin = make_admin(tmp_path)
    for path in ("/healthz", "/readyz", "/metrics"):
        assert admin.client().get(path).headers["X-Content-Type-Options"] == "nosniff"


def test_console_scripts_are_served_behind_the_login(tmp_path):
    """The console's scripts are files at /admin/static/ (the CSP allows no inline script),
    served to a session and not to anyone else; there is no /static/ outside the console."""
    admin = make_admin(tmp_path)
    assert admin.client().get("/admin/static/time.js").status_code == 302
    answer = admin.logged_in().get("/admin/static/time.js")
    assert answer.status_code == 200 and "use strict" in answer.get_data(as_text=True)
    assert answer.headers["Content-Security-Policy"] == CSP
    answer.close()  # a file's answer holds the file open until closed
    assert admin.client().get("/static/time.js").status_code == 404
