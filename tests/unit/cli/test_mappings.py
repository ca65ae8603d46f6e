"""The integrator's commands: relay check, relay preview, relay send, relay schema."""

from __future__ import annotations

import http.server
import json
import threading

import pytest
from click.testing import CliRunner

from relay.cli import main
from tests.conftest import MAPPINGS

ENV = {"ENGATI_CUSTOMER_ID": "123456", "ENGATI_BOT_KEY": "0a1b2c3d4e5f6a7b",
       "ENGATI_API_KEY": "secret-api-key-1", "ENGATI_BASE_URL": ""}


@pytest.fixture
def run(monkeypatch):
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)

    def invoke(*args, input=None):
        return CliRunner().invoke(main, [str(a) for a in args], input=input)

    return invoke


class TestCheck:
    def test_examples_pass(self, run):
        """`relay check mappings/` passes and says how many tests ran."""
        result = run("check", MAPPINGS)
        assert result.exit_code == 0, result.output
        assert "ok   a VIP lead goes to the VIP flow" in result.output
        assert " 0 failed" in result.output

    def test_failing_test_shows_expected_and_actual(self, run, write_mapping):
        """A failing test prints a line per difference and exits 1."""
        path = write_mapping("""
            phone: body.phone
            attributes: {name: body.name}
            flows: [{flow_key: A}]
            tests:
              - name: wrong expectations
                body: {phone: "+919812345678", name: Asha}
                expect: {flow_key: B, attributes: {name: Ash, city: Pune}}
        """)
        result = run("check", path)
        assert result.exit_code == 1
        assert "FAIL wrong expectations" in result.output
        assert "flow_key: expected 'B', got 'A'" in result.output
        assert "attributes.name: expected 'Ash', got 'Asha'" in result.output
        assert "attributes.city: expected 'Pune', got nothing (left out)" in result.output
        assert "1 test(s): 0 passed, 1 failed" in result.output

    def test_load_error_fails_the_check(self, run, write_mapping):
        """A broken mapping is reported with its line and fails the run."""
        path = write_mapping("phone: body.phone\nflows: [{flow_key: A, wen: x}]\n")
        result = run("check", path)
        assert result.exit_code == 1
        assert f"FAIL {path}:2: flows[0].wen: unknown key; did you mean 'when'?" in result.output

    def test_missing_body_file_fails_the_test(self, run, write_mapping):
        """A test whose body file is missing fails, naming the file."""
        path = write_mapping("""
            phone: body.phone
            flows: [{flow_key: A}]
            tests: [{name: t, body: examples/nope.json, expect: {flow_key: A}}]
        """)
        result = run("check", path)
        assert result.exit_code == 1
        assert "body: no file examples/nope.json next to" in result.output

    def test_warns_about_unset_engati_settings(self, run, write_mapping, monkeypatch):
        """Unset credentials are a warning, not a failure: tests need none."""
        monkeypatch.delenv("ENGATI_API_KEY")
        result = run("check", write_mapping())
        assert result.exit_code == 0
        assert "state unconfigured: engati settings not set: api_key (ENGATI_API_KEY)" in (
            result.output)


    def test_warns_about_what_cancel_names(self, run, write_mapping):
        """A cancel: naming a mapping not checked with it, or on an unverified endpoint, is
        warned of."""
        write_mapping("phone: body.p\nflows: [{flow_key: F}]\nverify: false\n", name="nudge")
        path = write_mapping("verify: false\ncancel: {key: body.k, mappings: [nudge, nudgee]}\n",
                             name="paid")
        result = run("check", path.parent)
        assert result.exit_code == 0, result.output
        assert ("warn cancel.mappings names nudgee, not among the mappings checked: a "
                "misspelt name cancels nothing") in result.output
        assert "warn cancel: on an endpoint that verifies no sender" in result.output

    def test_a_folder_without_mappings_is_one_error(self, run, tmp_path):
        result = run("check", tmp_path)
        assert (result.exit_code, result.output) == (
            1, "error: no mapping files (*.yaml) found\n")

    def test_a_bad_setting_is_one_error_before_anything_runs(self, run, monkeypatch):
        monkeypatch.setenv("RELAY_CONCURRENCY", "lots")
        result = run("check")
        assert (result.exit_code, result.output) == (
            1, "error: RELAY_CONCURRENCY='lots': expected a whole number greater than 0\n")


class TestPreview:
    def test_typeform_vip_prints_the_exact_v2_request(self, run):
        """The README's preview: one v2 request, the API key masked."""
        result = run("preview", MAPPINGS / "typeform-leads.yaml",
                     MAPPINGS / "examples" / "typeform-vip.json")
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout) == [{
            "method": "POST",
            "url": "https://api.engati.ai/bot-api/v2.0/customer/123456/bot/0a1b2c3d4e5f6a7b"
                   "/flow/4F1E0C2B9A7D4E3F8A6B5C4D3E2F1A0B",
            "headers": {"Authorization": "Basic ***", "Content-Type": "application/json"},
            "json": {"user.channel": "whatsapp", "user.phone_no": "919812345678",
                     "name": "Asha", "category": "VIP", "email": "asha@example.com",
                     "utm_source": "instagram", "campaign": "diwali-2026",
                     "lead_source": "typeform"},
        }]
        assert "secret-api-key-1" not in result.output

    def test_stdin_headers_query_and_v1(self, run, write_mapping):
        """BODY - reads stdin; -H and -q reach the expressions; v1 puts it all in the URL."""
        path = write_mapping("""
            engati: {api: v1}
            phone: query.to
            attributes: {region: headers."x-region"}
            flows: [{flow_key: F}]
        """)
        result = run("preview", path, "-", "-H", "X-Region: north", "-q", "to=+919812345678",
                     input="{}")
        assert result.exit_code == 0, result.output
        (request,) = json.loads(result.stdout)
        assert request["url"].endswith(
            "/bot-api/v1.0/customer/123456/bot/0a1b2c3d4e5f6a7b/flow/F"
            "?user.channel=whatsapp&user.phone_no=919812345678&region=north")
        assert request["json"] is None

    def test_mapping_by_name(self, run, monkeypatch, write_mapping):
        """MAPPING may be an endpoint name in RELAY_MAPPINGS."""
        path = write_mapping(name="shop")
        monkeypatch.setenv("RELAY_MAPPINGS", str(path.parent))
        result = run("preview", "shop", "-", input='{"phone": "+14155552671"}')
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)[0]["json"]["user.phone_no"] == "14155552671"

    def test_mapping_errors_exit_1(self, run, write_mapping):
        """A webhook that cannot be mapped prints every error and exits 1."""
        result = run("preview", write_mapping(), "-", input='{"phone": "abc"}')
        assert result.exit_code == 1
        assert "error: phone: 'abc' is not a phone number" in result.stderr

    def test_unparseable_body(self, run, write_mapping):
        """Invalid JSON is a clear error, not a traceback."""
        result = run("preview", write_mapping(), "-", "-H", "Content-Type: application/json",
                     input="{nope")
        assert result.exit_code == 1
        assert "error: the body is not valid JSON" in result.stderr

    def test_unknown_mapping(self, run):
        """A mapping that is neither a file nor a name is a usage error."""
        result = run("preview", "no-such-mapping", "-", input="{}")
        assert result.exit_code == 2
        assert "no mapping 'no-such-mapping'" in result.output

    def test_bad_header_syntax(self, run, write_mapping):
        """-H without a colon is a usage error."""
        result = run("preview", write_mapping(), "-", "-H", "nocolon", input="{}")
        assert result.exit_code == 2
        assert "'nocolon' is not 'Name: value'" in result.output


class TestPreviewTimes:
    def test_now_says_when_each_request_goes_and_why(self, run):
        """--now previews as if the webhook arrived then: the reminder an hour before the
        meeting, on standard error; standard output stays the requests' JSON."""
        result = run("preview", MAPPINGS / "calendly-reminders.yaml",
                     MAPPINGS / "examples" / "calendly-invitee-created.json",
                     "--now", "2026-11-24T09:05:12Z")
        assert result.exit_code == 0, result.output
        assert len(json.loads(result.stdout)) == 1
        assert result.stderr.splitlines()[:2] == [
            "arrival: 2026-11-24T09:05:12Z (--now)",
            "request 1: 2026-11-28T16:00:00Z, in 4d6h54m48s (at body.payload.scheduled_event."
            "start_time (2026-11-28T17:00:00Z) - 1h)"]

    def test_quiet_hours_and_epoch_now(self, run):
        """Epoch seconds work as --now; a delay that ends in quiet hours says until when."""
        result = run("preview", MAPPINGS / "shopify-checkout-nudge.yaml",
                     MAPPINGS / "examples" / "shopify-checkout-create.json",
                     "-H", "X-Shopify-Topic: checkouts/create", "--now", "1795532400")
        assert result.exit_code == 0, result.output
        assert ("request 1: 2026-11-25T03:30:00Z, in 12h30m (delay 1h; quiet hours "
                "21:00-09:00 in Asia/Calcutta: waits until 2026-11-25 09:00 IST)"
                in result.stderr)

    def test_what_a_webhook_cancels(self, run):
        """A cancel-only mapping plans no request and says which key of which mapping it
        cancels, and for how long it waits for one still to come."""
        result = run("preview", MAPPINGS / "shopify-order-paid.yaml",
                     MAPPINGS / "examples" / "shopify-order-paid.json",
                     "-H", "X-Shopify-Topic: orders/paid")
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout) == []
        assert result.stderr == (
            "cancels key '5f2a8c0e9b7d4e1fa3c6b8d0e2f4a6c8' of shopify-checkout-nudge "
            "(pending deliveries now, and those arriving within 1d)\n")

    def test_cancelling_and_filtered_out_by_its_own_mapping(self, run):
        """Calendly's invitee.canceled is filtered out and cancels this mapping's reminder."""
        result = run("preview", MAPPINGS / "calendly-reminders.yaml",
                     MAPPINGS / "examples" / "calendly-invitee-canceled.json")
        assert result.exit_code == 0, result.output
        assert result.stderr.splitlines() == [
            "no request: the filter was false",
            "cancels key 'https://api.calendly.com/scheduled_events/GBGBDCAADAEDCRZ2/invitees/"
            "AAAAAAAAAAAAAAAA' of calendly-reminders (this mapping) (pending deliveries now, "
            "and those arriving within 1d)"]

    def test_at_once_without_a_schedule(self, run, write_mapping):
        result = run("preview", write_mapping(), "-", input='{"phone": "+14155552671"}')
        assert result.exit_code == 0, result.output
        assert "request 1: at once" in result.stderr.splitlines()

    def test_a_time_gone_is_skipped_and_said(self, run):
        """Without --now the clock decides: the 2026-11-28 meeting of the example is past."""
        result = run("preview", MAPPINGS / "calendly-reminders.yaml",
                     MAPPINGS / "examples" / "calendly-invitee-created.json",
                     "--now", "2026-11-28T16:30:00Z")
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout) == []
        assert ("skipped: schedule: 2026-11-28T16:00:00Z had passed when the webhook arrived "
                "(if_past: skip); nothing would be sent") in result.stderr

    def test_a_bad_now_is_a_usage_error(self, run, write_mapping):
        result = run("preview", write_mapping(), "-", "--now", "soon", input="{}")
        assert result.exit_code == 2
        assert "Invalid value for --now: 'soon' is not an ISO 8601 time" in result.output


def test_schema_prints_the_json_schema(run):
    """`relay schema` prints the schema editors can use."""
    result = run("schema")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["title"] == "relay mapping"


def test_preview_reads_standard_input_as_json(run):
    """`echo 'not json' | relay preview m.yaml -` says the body is not JSON, not that it
    has no content type."""
    result = run("preview", MAPPINGS / "crm-leads.yaml", "-", input="not json")
    assert result.exit_code == 1
    assert "the body is not valid JSON" in result.output


def test_send_posts_a_sender_that_signs_nothing_as_it_is(run):
    """Salesforce signs nothing: `relay send` posts the body unsigned (it used to crash)."""
    received: list[bytes] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        body = MAPPINGS / "examples" / "salesforce-two-leads.xml"
        result = run("send", "salesforce-leads", body, "--url",
                     f"http://127.0.0.1:{server.server_port}/hooks/salesforce-leads")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
    assert result.exit_code == 0, result.output
    assert received == [body.read_bytes()]
