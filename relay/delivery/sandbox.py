"""`relay sandbox`: an Engati API Trigger stand-in on 127.0.0.1, for trying the relay without
an Engati account, and for end-to-end tests; and a Graph API stand-in for Meta Lead Ads'
lookups (META_GRAPH_URL pointed at it).

It checks what Engati checks (the path, `Authorization: Basic <key>`, the body keys), answers
as Engati does, and prints every call. `GET /v<version>/<leadgen_id>` with a Bearer token
answers a lead as the Graph API does: one given to /_sandbox/leads, else one made up from the
id's digits (a phone number ending in them); an id without digits is a Graph error 100, as
for a lead that is gone. Tests steer it over HTTP:

    POST /_sandbox/script  [{"status": 503}, {"status": 429, "retry_after": 1}, ...]
                           answers to give next, in order (then back to normal)
    POST /_sandbox/mode    {"status": 503} fail every call until {"status": null};
                           {"delay": 0.2} answer after 200 ms
    GET  /_sandbox/calls   every call received, oldest first;  DELETE clears them
    POST /_sandbox/leads   {"<leadgen_id>": {lead}, ...} leads to answer
    GET  /_sandbox/lookups every Graph API read, oldest first
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

PATH = re.compile(r"^/bot-api/v(?P<version>[12])\.0/customer/(?P<customer>[^/]+)"
                  r"/bot/(?P<bot>[^/]+)/flow/(?P<flow>[^/]+)$")
SUCCESS = {"responseObject": {"success": True}, "status": {"code": 1000, "desc": "SUCCESS"}}
CHANNELS = ("whatsapp", "rcs")
GRAPH_PATH = re.compile(r"^/v\d+\.\d+/(?P<id>[^/]+)$")


class Sandbox:
    """The stand-in's state: calls received and the answers it was told to give."""

    def __init__(self, api_key: str | None = None, echo: Callable[[str], None] | None = None):
        self.api_key = api_key
        self.echo = echo
        self.calls: list[dict[str, Any]] = []
        self.script: list[dict[str, Any]] = []
        self.mode: dict[str, Any] = {}
        self.leads: dict[str, dict[str, Any]] = {}
        self.lookups: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def graph(self, target: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        """A Graph API read of a lead, as Meta answers it."""
        url = urlsplit(target)
        match = GRAPH_PATH.match(url.path)
        auth = headers.get("authorization", "")
        token = auth[7:] if auth.startswith("Bearer ") else dict(parse_qsl(url.query)).get(
            "access_token", "")
        if not match:
            status, reply = 400, _graph_error(2500, "Unknown path components")
        elif not token:
            status, reply = 400, _graph_error(190, "An active access token must be used")
        else:
            lead_id = match["id"]
            with self.lock:
                reply = self.leads.get(lead_id) or _made_up_lead(lead_id)
            status = 400 if "error" in reply else 200
        with self.lock:
            self.lookups.append({"at": time.time(), "path": url.path, "status": status,
                                 "token": bool(token)})
        if self.echo:
            self.echo(f"sandbox: Graph API {url.path} -> {status}")
        return status, {"Content-Type": "application/json"}, json.dumps(reply).encode()

    def answer(self, method: str, target: str, headers: dict[str, str],
               body: bytes) -> tuple[int, dict[str, str], bytes]:
        url = urlsplit(target)
        received = time.time()
        with self.lock:
            planned = self.script.pop(0) if self.script else dict(self.mode)
        if planned.get("delay"):
            time.sleep(float(planned["delay"]))
        status, reply = self._check(method, url.path, dict(parse_qsl(url.query)), headers, body)
        if status == 200 and (planned.get("status") or planned.get("code")):
            status = int(planned.get("status", 200))
            code = planned.get("code")
            reply = None if code is None else {"responseObject": None,
                                               "status": {"code": code, "desc": "FAILURE"}}
        extra = {"Retry-After": str(planned["retry_after"])} if "retry_after" in planned else {}
        call = self._record(url, headers, body, status, received)
        if self.echo:
            self.echo(_describe(call))
        data = json.dumps(reply).encode() if reply is not None else b""
        return status, {"Content-Type": "application/json", **extra} if data else extra, data

    def _check(self, method: str, path: str, query: dict[str, str], headers: dict[str, str],
               body: bytes) -> tuple[int, dict[str, Any] | None]:
        match = PATH.match(path)
        if method != "POST" or not match:
            return 404, None
        auth = headers.get("authorization", "")
        key = auth[6:] if auth.startswith("Basic ") else ""
        if not key or (self.api_key is not None and key != self.api_key):
            return 401, None  # Engati answers a bad key with an empty 401
        if match["version"] == "1":
            fields = query
        else:
            if not headers.get("content-type", "").startswith("application/json"):
                return 415, _failure("Content-Type must be application/json")
            try:
                fields = json.loads(body)
            except ValueError:
                return 400, _failure("the body is not JSON")
            if not isinstance(fields, dict):
                return 400, _failure("the body must be a JSON object")
        if str(fields.get("user.channel", "whatsapp")).lower() not in CHANNELS:
            return 400, _failure("user.channel must be whatsapp or rcs")
        if not re.fullmatch(r"\+?\d{8,15}", str(fields.get("user.phone_no", ""))):
            return 400, _failure("user.phone_no must be the number with its country code")
        return 200, SUCCESS

    def _record(self, url: Any, headers: dict[str, str], body: bytes, status: int,
                received: float) -> dict[str, Any]:
        match = PATH.match(url.path)
        try:
            payload = json.loads(body) if body else None
        except ValueError:
            payload = body.decode("utf-8", "replace")
        call = {
            "received_at": received,
            "at": time.time(),  # when it was answered
            "path": url.path,
            "query": dict(parse_qsl(url.query)),
            "flow_key": match["flow"] if match else None,
            "authorization": headers.get("authorization"),
            "json": payload,
            "status": status,
        }
        with self.lock:
            self.calls.append(call)
        return call


def _made_up_lead(lead_id: str) -> dict[str, Any]:
    digits = "".join(ch for ch in lead_id if ch.isdigit())
    if not digits:
        return _graph_error(100, f"Object with ID '{lead_id[:40]}' does not exist, cannot be "
                            "loaded due to missing permissions, or does not support this "
                            "operation", "GraphMethodException")
    return {"id": lead_id, "created_time": "2026-12-01T10:00:00+0000", "field_data": [
        {"name": "full_name", "values": ["Sandbox Lead"]},
        {"name": "email", "values": ["lead@example.com"]},
        {"name": "phone_number", "values": ["+9198" + digits[-8:].rjust(8, "0")]}]}


def _graph_error(code: int, message: str, kind: str = "OAuthException") -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "code": code, "is_transient": False,
                      "fbtrace_id": "sandbox"}}


def _failure(desc: str) -> dict[str, Any]:
    return {"responseObject": None, "status": {"code": 2000, "desc": f"FAILURE: {desc}"}}


def _describe(call: dict[str, Any]) -> str:
    fields = call["json"] if isinstance(call["json"], dict) else call["query"]
    attributes = {k: v for k, v in fields.items() if k not in ("user.channel", "user.phone_no")}
    return (f"sandbox: flow {call['flow_key']} {fields.get('user.channel', '?')} "
            f"{fields.get('user.phone_no', '?')} {json.dumps(attributes, ensure_ascii=False)}"
            f" -> {call['status']}")


def make_server(sandbox: Sandbox, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _send(self, status: int, headers: dict[str, str], data: bytes) -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _control(self, method: str) -> bool:
            path = urlsplit(self.path).path
            if not path.startswith("/_sandbox/"):
                return False
            body = self._body()
            with sandbox.lock:
                if path == "/_sandbox/calls" and method == "DELETE":
                    sandbox.calls.clear()
                elif path == "/_sandbox/script" and method == "POST":
                    sandbox.script.extend(json.loads(body))
                elif path == "/_sandbox/mode" and method == "POST":
                    sandbox.mode = {k: v for k, v in json.loads(body).items() if v is not None}
                elif path == "/_sandbox/leads" and method == "POST":
                    sandbox.leads.update(json.loads(body))
                shown = {"/_sandbox/calls": sandbox.calls, "/_sandbox/lookups": sandbox.lookups}
                reply = json.dumps(shown.get(path, {"ok": True}))
            self._send(200, {"Content-Type": "application/json"}, reply.encode())
            return True

        def do_POST(self) -> None:
            if not self._control("POST"):
                headers = {k.lower(): v for k, v in self.headers.items()}
                self._send(*sandbox.answer("POST", self.path, headers, self._body()))

        def do_GET(self) -> None:
            if not self._control("GET"):
                headers = {k.lower(): v for k, v in self.headers.items()}
                self._send(*sandbox.graph(self.path, headers))

        def do_DELETE(self) -> None:
            if not self._control("DELETE"):
                self._send(404, {}, b"")

        def log_message(self, format: str, *args: Any) -> None:
            pass  # each call is echoed by the sandbox itself

    class Server(ThreadingHTTPServer):
        request_queue_size = 1024  # thousands of calls may arrive at once, as at Engati
        daemon_threads = True

    return Server((host, port), Handler)
