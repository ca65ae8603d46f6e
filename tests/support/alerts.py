"""Real alert receivers on 127.0.0.1 for the alert tests: an HTTP server (http.server in a
thread) that records every POST and answers with the statuses a test scripts, and an SMTP
server (aiosmtpd) that records every mail. Both on free ports, both always stopped."""

from __future__ import annotations

import json
import threading
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from relay.mapping import Delivery, Result
from relay.model import Attempt, FailureKind, Outcome, Received
from tests.support.live import free_port


class HttpReceiver:
    """`statuses`: what the next POSTs are answered (200 once they run out); `hang`: seconds
    to wait before answering (a receiver that hangs)."""

    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        self.arrived = 0  # POSTs come in, answered or not (a hanging receiver holds them)
        self.statuses: list[int] = []
        self.hang = 0.0
        self._lock = threading.Lock()
        self._release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.arrived += 1
                if receiver.hang:
                    receiver._release.wait(receiver.hang)
                with receiver._lock:
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                    receiver.posts.append({"path": self.path, "status": status,
                                           "headers": dict(self.headers),
                                           "raw": body.decode(), "json": json.loads(body)})
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts/T0SECRETPATH"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> HttpReceiver:
        self._thread.start()
        return self

    def release(self) -> None:
        """Answer the POSTs a hanging receiver holds."""
        self._release.set()

    def stop(self) -> None:
        self._release.set()
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)

    def delivered(self) -> list[dict[str, Any]]:
        """The bodies of the POSTs answered 2xx."""
        with self._lock:
            return [p["json"] for p in self.posts if 200 <= p["status"] < 300]


class _Mailbox:
    def __init__(self) -> None:
        self.mails: list[tuple[list[str], Message, str]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw = envelope.content if isinstance(envelope.content, bytes) else (
            envelope.content.encode())
        self.mails.append((list(envelope.rcpt_tos), message_from_bytes(raw), raw.decode()))
        return "250 OK"


# For the tests of a module using SmtpReceiver(login=...): aiosmtpd warns, in its own thread
# and at every connection, of AUTH without TLS (the test server on 127.0.0.1 has no
# certificate) and, when a login succeeds, of its own deprecated attribute.
SMTP_WARNINGS = [
    pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning"),
    pytest.mark.filterwarnings("ignore:Session.login_data is deprecated:DeprecationWarning"),
]


class SmtpReceiver:
    """aiosmtpd on a free port; with `login` (user, password), AUTH LOGIN/PLAIN is required
    (over plain TCP: the test server has no certificate)."""

    def __init__(self, login: tuple[str, str] | None = None) -> None:
        self.box = _Mailbox()
        self.port = free_port()
        kwargs: dict[str, Any] = {}
        if login is not None:
            def authenticate(server: Any, session: Any, envelope: Any, mechanism: str,
                             data: Any) -> AuthResult:
                ok = isinstance(data, LoginPassword) and (
                    data.login.decode(), data.password.decode()) == login
                return AuthResult(success=ok, handled=False)  # a failure answers 535

            kwargs = {"authenticator": authenticate, "auth_required": True,
                      "auth_require_tls": False}
        self.controller = Controller(self.box, hostname="127.0.0.1", port=self.port, **kwargs)

    @property
    def mails(self) -> list[tuple[list[str], Message, str]]:
        return self.box.mails

    def start(self) -> SmtpReceiver:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()


def tried(store: Any, mapping: str, outcome: Outcome, failure: FailureKind | None,
          now: float, error: str = "boom", phone: str = "919812345678") -> None:
    """A delivery of `mapping` (to `phone`) tried once at `now`, coming to `outcome`."""
    delivery = Delivery("FLOW", "whatsapp", phone, {"name": "Asha"}, None)
    store.accept(Received(mapping, b'{"phone": "' + phone.encode() + b'"}', {}, {},
                          Result((delivery,)), now))
    (claimed,) = store.claim("engati-worker", 1, now, 60.0)
    done = outcome == Outcome.DELIVERED
    store.record_many([Attempt(claimed.id, now, 5.0, outcome, 500, None,
                               None if done else error, None if done else failure,
                               now + 60 if outcome == Outcome.RETRY else None)],
                      "engati-worker", now)
