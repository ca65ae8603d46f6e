"""Capture, then draft: which sender a sample came from, its phone candidates, and the
mapping drafted from it (loads with relay's loader, its test passes, `relay check` passes)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from relay.capture.detect import detect
from relay.capture.draft import FLOW_PLACEHOLDER, draft, write
from relay.capture.phones import find_phones
from relay.cli import main
from relay.errors import RelayError
from relay.sources import PRESETS, load_endpoint
from relay.sources.selftest import run_tests

EXAMPLES = Path(__file__).resolve().parents[3] / "mappings" / "examples"
JSON = {"content-type": "application/json"}
BOUNDARY = "multipart/form-data; boundary=------------------------4f1c2a9b7e3d5f60"
# Each preset's example payload with the headers its sender sends (signatures as stored:
# redacted), the preset it must be recognised as, and the phone the draft must find.
SAMPLES = {
    "typeform": ("typeform-vip.json", {**JSON, "typeform-signature": "[redacted]"},
                 "919812345678"),
    "stripe": ("stripe-checkout.json", {**JSON, "stripe-signature": "[redacted]"}, None),
    "shopify": ("shopify-order.json", {**JSON, "x-shopify-hmac-sha256": "[redacted]",
                                       "x-shopify-topic": "orders/create"}, "919830012345"),
    "razorpay": ("razorpay-payment.json", {**JSON, "x-razorpay-signature": "[redacted]"},
                 None),
    "hubspot": ("hubspot-phone-changes.json", {**JSON, "x-hubspot-signature-v3": "[redacted]",
                                               "x-hubspot-request-timestamp": "1"}, None),
    "calendly": ("calendly-invitee-created.json",
                 {**JSON, "calendly-webhook-signature": "[redacted]"}, None),
    "tally": ("tally-response.json", {**JSON, "tally-signature": "[redacted]"}, None),
    "github": ("github-issue-opened.json", {**JSON, "x-hub-signature-256": "[redacted]",
                                            "x-github-event": "issues"}, None),
    "standard-webhooks": ("clerk-user-created.json", {
        **JSON, "webhook-id": "msg_2pQ", "webhook-timestamp": "1764062000",
        "webhook-signature": "[redacted]"}, None),
    "salesforce": ("salesforce-two-leads.xml", {"content-type": "text/xml; charset=utf-8"},
                   "919812345678"),
    "jotform": ("jotform-appointment.txt", {"content-type": BOUNDARY}, "919812345678"),
    "meta-lead-ads": ("meta-leadgen.json", {**JSON, "x-hub-signature-256": "[redacted]"},
                      None),
    "woocommerce": ("woocommerce-order.json", {**JSON, "x-wc-webhook-signature": "[redacted]",
                                               "x-wc-webhook-topic": "order.updated"},
                    "919812345678"),
    "cashfree": ("cashfree-payment-success.json", {
        **JSON, "x-webhook-signature": "[redacted]", "x-webhook-timestamp": "1764062000000",
        "x-webhook-version": "2025-01-01"}, "919812345678"),
    "generic": ("crm-lead.json", {**JSON, "x-relay-token": "[redacted]"}, "447911123456"),
    "cal-com": ("cal-com-booking-created.json", {**JSON, "x-cal-signature-256": "[redacted]"},
                "919876543210"),
    "webflow": ("webflow-form-submission.json", {
        **JSON, "x-webflow-signature": "[redacted]", "x-webflow-timestamp": "1763642116117"},
        "919847011223"),
    "google-ads": ("google-ads-lead.json", JSON, "919900122334"),  # the key is in the body
}


def sample(preset: str, sample_id: int = 7) -> dict:
    file, headers, _ = SAMPLES[preset]
    return {"id": sample_id, "name": "new-sender", "headers": headers, "query": {},
            "body": (EXAMPLES / file).read_bytes(), "signature": "unchecked"}


def test_every_preset_has_a_sample_here():
    """A preset added to relay/sources/ must be added here, recognised and drafted."""
    assert set(SAMPLES) == set(PRESETS)


class TestDetect:
    @pytest.mark.parametrize("preset", sorted(SAMPLES))
    def test_each_sender_is_recognised_from_its_headers_and_body(self, preset):
        """Each preset's example payload, with its sender's headers, picks that preset."""
        file, headers, _ = SAMPLES[preset]
        assert detect(headers, (EXAMPLES / file).read_bytes()).preset == preset

    @pytest.mark.parametrize("preset", ["typeform", "stripe", "razorpay", "calendly", "tally",
                                        "hubspot", "woocommerce", "cashfree", "cal-com",
                                        "webflow", "google-ads"])
    def test_json_senders_are_recognised_by_their_body_alone(self, preset):
        """Without its signature header (not signing yet, or a proxy dropped it), a JSON
        sender is still told by the shape of its body."""
        file, _, _ = SAMPLES[preset]
        assert detect(JSON, (EXAMPLES / file).read_bytes()).preset == preset

    def test_anything_else_is_generic(self):
        assert detect(JSON, b'{"hello": "world"}').preset == "generic"
        assert detect({}, b"\xff\xfe not json").preset == "generic"


class TestPhones:
    def test_named_fields_come_before_numbers_in_text(self):
        """A number under a key named like a phone ranks before one found inside a text;
        both are found, by libphonenumber, in any format."""
        leaves = [("body.note", "note", "call me on +91 98123 45679 after 6"),
                  ("body.whatsapp", "whatsapp", "098123 45678"),
                  ("body.id", "id", 12345678901)]
        found = find_phones(leaves, "IN")
        assert [c.path for c in found] == ["body.whatsapp", "body.note"]
        assert found[0].number == "+919812345678" and found[0].whole
        assert not found[1].whole

    def test_a_bare_number_under_a_phone_key_is_a_candidate(self):
        found = find_phones([("body.contact", "contact", 9812345678)], "IN")
        assert [c.number for c in found] == ["+919812345678"]


class TestDraft:
    @pytest.mark.parametrize("preset", sorted(SAMPLES))
    def test_the_draft_loads_and_its_test_passes(self, preset, tmp_path):
        """Written into a mappings folder, the draft loads with relay's own loader, names
        the recognised preset, and its test (the sample, from examples/) passes."""
        made = draft("new-sender", sample(preset))
        mapping, example = write(tmp_path, "new-sender", made)
        assert example == tmp_path / "examples" / example.name
        assert example.read_bytes() == sample(preset)["body"]  # byte-exact
        endpoint = load_endpoint(mapping, env={})
        assert endpoint.preset.name == preset
        outcomes = run_tests(endpoint)
        assert len(outcomes) == 1 and outcomes[0].passed, outcomes[0].failures
        assert FLOW_PLACEHOLDER in made.yaml and "FILL IN" in made.yaml
        expected_phone = SAMPLES[preset][2]
        if expected_phone:
            assert f'"phone": "{expected_phone}"' in made.yaml

    def test_google_ads_columns_are_read_by_their_id(self):
        """What a preset adds to the envelope comes first: a Google Ads lead's phone is
        `columns.PHONE_NUMBER`, not an index into user_column_data."""
        text = draft("leads", sample("google-ads")).yaml
        assert "  path: columns.PHONE_NUMBER  #" in text
        assert "email: columns.EMAIL" in text

    def test_typeform_answers_are_addressed_by_their_ref(self):
        """Typeform's answers are a list: the draft addresses each by its field's ref and
        names the attribute after it."""
        text = draft("leads", sample("typeform")).yaml
        assert "name: \"body.form_response.answers[?field.ref=='name'].text | [0]\"" in text
        assert "email: \"body.form_response.answers[?field.ref=='email'].email | [0]\"" in text

    def test_salesforce_takes_either_phone_of_its_leads_and_its_org(self):
        """Salesforce's leads carry a MobilePhone or a Phone: the draft takes either, and
        allows the organization that sent the sample."""
        text = draft("leads", sample("salesforce")).yaml
        assert 'path: "item.sObject.MobilePhone || item.sObject.Phone"' in text
        assert "organization_id: 00D5g000004XyZ1EAC" in text
        assert '"deliveries": [' in text

    def test_signed_senders_name_the_secret_to_set(self):
        text = draft("pay", sample("stripe")).yaml
        assert "secret: ${STRIPE_WEBHOOK_SECRET}" in text

    def test_other_phone_numbers_are_left_as_comments(self):
        """GitHub carries the number inside the issue's text: offered as a comment with an
        extract() that reads it, the path itself marked FILL IN."""
        text = draft("issues", sample("github")).yaml
        assert "# path: \"extract(body.issue.body" in text
        assert "FILL IN: no phone number was found" in text

    @pytest.mark.parametrize("org", [
        "00D5g000004XyZ1EAC\nengati: {base_url: \"http://attacker.example\"}",
        "[00D5g000004XyZ1EAC, 00D000000000BAD]", "2026-02-30", "00D5g000004XyZ1EAC\n"])
    def test_a_hostile_org_id_never_becomes_yaml(self, org):
        """Anyone may post into an open window: an OrganizationId that is no org id (a line
        break and a key, a list, a date) is not written; a placeholder stands there."""
        found = sample("salesforce")
        body = found["body"].decode().replace("00D5g000004XyZ1EAC", org.replace("\n", "&#10;"))
        text = draft("leads", {**found, "body": body.encode()}).yaml
        assert "organization_id: FILL_IN_YOUR_ORG_ID" in text
        assert "attacker" not in text and "engati: {" not in text

    def test_hostile_keys_and_values_stay_strings(self, tmp_path):
        """Keys with line breaks, quotes and YAML syntax, and values with U+2028, are
        quoted: the draft loads, and has no key the sample did not earn."""
        import json as json_
        body = json_.dumps({"phone": "+919812345678", "name\nengati:": "x",
                            "city\u2028engati: {base_url: http://evil}": "Pune",
                            "first_name": "Asha\u2028engati:"}).encode()
        made = draft("hostile", {"id": 3, "name": "hostile", "headers": JSON, "query": {},
                                 "body": body, "signature": "unchecked"})
        mapping, _ = write(tmp_path, "hostile", made)
        endpoint = load_endpoint(mapping, env={})
        assert endpoint.mapping.engati.base_url != "http://evil"
        assert "\nengati" not in made.yaml.replace("\\n", "")
        outcomes = run_tests(endpoint)
        assert outcomes[0].passed, outcomes[0].failures

    def test_write_never_overwrites(self, tmp_path):
        made = draft("new-sender", sample("generic"))
        write(tmp_path, "new-sender", made)
        with pytest.raises(RelayError, match="exists already"):
            write(tmp_path, "new-sender", made)

    def test_relay_check_passes_on_the_written_draft(self, tmp_path, monkeypatch):
        """`relay check` on the folder the draft was written to exits 0."""
        for index, preset in enumerate(("typeform", "salesforce", "jotform")):
            made = draft(f"new-{preset}", sample(preset, index + 1))
            write(tmp_path, f"new-{preset}", made)
        monkeypatch.setenv("RELAY_MAPPINGS", str(tmp_path))
        result = CliRunner().invoke(main, ["check", str(tmp_path)])
        assert result.exit_code == 0, result.output
        assert "3 test(s): 3 passed, 0 failed" in result.output
