"""`relay send` signs as a sender whose credential is in the body (Google Ads): the body it
posts carries the mapping's key as google_key, which the preset accepts."""

from __future__ import annotations

import http.server
import json
import threading
import time

from click.testing import CliRunner

from relay.cli import main
from relay.sources import Inbound, load_endpoint
from tests.conftest import MAPPINGS

KEY = "google-ads-key-for-send"


def test_send_puts_google_key_into_the_body(monkeypatch, tmp_path):
    monkeypatch.setenv("GOOGLE_ADS_WEBHOOK_KEY", KEY)
    received: list[tuple[bytes, str]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            raw = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((raw, self.headers["Content-Type"]))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    body = tmp_path / "lead.json"
    lead = json.loads((MAPPINGS / "examples" / "google-ads-lead.json").read_bytes())
    del lead["google_key"]  # as an integrator would write a test lead
    body.write_text(json.dumps(lead))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        result = CliRunner().invoke(main, [
            "send", str(MAPPINGS / "google-ads-leads.yaml"), str(body), "--url",
            f"http://127.0.0.1:{server.server_port}/hooks/google-ads-leads"])
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
    assert result.exit_code == 0, result.output
    ((raw, content_type),) = received
    assert json.loads(raw) == {**lead, "google_key": KEY}
    endpoint = load_endpoint(MAPPINGS / "google-ads-leads.yaml")
    endpoint.preset.verify(endpoint, Inbound(raw, {"content-type": content_type}), time.time())
