"""Endpoints: a mapping file loaded with its preset, its secrets and verify options.

Every problem of a file, the mapping's and the sender's, is reported at once by line.
"""

from __future__ import annotations

import time

import pytest

from relay.errors import MappingLoadError
from relay.sources import Inbound, evaluate_raw, load_endpoint
from relay.sources.generic import Hmac, Token

PHONE_FLOW = "phone: body.phone\nflows: [{flow_key: X}]\n"


def problems(write_mapping, text, env=None):
    path = write_mapping(text)
    with pytest.raises(MappingLoadError) as info:
        load_endpoint(path, env=env or {})
    return [str(p).replace(str(path), "FILE") for p in info.value.problems]


class TestLoading:
    def test_name_file_mapping_and_preset(self, endpoint):
        """The endpoint is named after its file and holds the mapping and the preset, whose
        defaults fill `id` and `each`."""
        loaded = endpoint("source: salesforce\norganization_id: 00D5g000004XyZ1EAC\n"
                          "phone: item.sObject.Phone\nflows: [{flow_key: X}]\n", name="sf")
        assert (loaded.name, loaded.file.endswith("sf.yaml")) == ("sf", True)
        assert loaded.preset.name == "salesforce"
        assert (loaded.mapping.each.text, loaded.mapping.id.text) == ("body.Notification",
                                                                      "item.Id")
        assert loaded.organizations == ("00D5g000004XyZ1EAC",)

    def test_mapping_and_sender_problems_come_together_by_line(self, write_mapping):
        """One pass: a broken expression and a missing secret are both reported, in the
        order of their lines."""
        found = problems(write_mapping, """
            phone: body.phone[
            source: stripe
            flows: [{flow_key: X}]
        """)
        assert [f.split(":")[2].strip() for f in found] == ["phone", "source"]

    def test_unreadable_file(self, tmp_path):
        """A file that cannot be read says why."""
        with pytest.raises(MappingLoadError, match="cannot read the file"):
            load_endpoint(tmp_path / "missing.yaml", env={})

class TestFileKeys:
    def test_unknown_source(self, write_mapping):
        """An unknown preset lists the known ones."""
        found = problems(write_mapping, """
            source: typefrom
            phone: body.phone
            flows: [{flow_key: X}]
        """)
        assert len(found) == 1
        assert found[0].startswith("FILE:2: source: unknown source 'typefrom'; expected one of")

    def test_bad_file_name(self, tmp_path):
        """The file name is the endpoint, so it must be URL-safe."""
        path = tmp_path / "my leads.yaml"
        path.write_text("phone: a\nflows: [{flow_key: X}]\n")
        with pytest.raises(MappingLoadError, match="cannot be an endpoint name"):
            load_endpoint(path, env={})


class TestVerification:
    def test_signed_sender_needs_a_secret(self, write_mapping):
        """A signed preset without `secret` is refused, naming the variable to use."""
        found = problems(write_mapping, "source: stripe\nphone: a\nflows: [{flow_key: X}]\n")
        assert found == ["FILE:1: source: stripe signs its webhooks: add secret: "
                         "${STRIPE_WEBHOOK_SECRET}, or verify: false to accept unsigned ones"]

    def test_verify_false_is_explicit_and_allowed(self, endpoint):
        """verify: false loads without a secret."""
        loaded = endpoint("source: stripe\nverify: false\nphone: a\nflows: [{flow_key: X}]\n")
        assert loaded.verify is False
        assert not loaded.preset.verifies(loaded)

    def test_unset_secret_locks_instead_of_failing(self, endpoint):
        """${NAME} unset in `secret` loads the mapping locked, naming the variable."""
        loaded = endpoint("source: typeform\nsecret: ${TF_SECRET}\nphone: a\n"
                         "flows: [{flow_key: X}]\n")
        assert loaded.locked == "TF_SECRET is not set"
        unlocked = endpoint("source: typeform\nsecret: ${TF_SECRET}\nphone: a\n"
                           "flows: [{flow_key: X}]\n", env={"TF_SECRET": "s"})
        assert (unlocked.locked, unlocked.secrets) == (None, ("s",))

    def test_salesforce_needs_an_organization(self, write_mapping):
        """Salesforce signs nothing, so the organization id is required."""
        found = problems(write_mapping, "source: salesforce\nphone: a\nflows: [{flow_key: X}]\n")
        assert found[0].startswith("FILE:1: source: Salesforce signs nothing: add organization_id")

    def test_verify_options_are_for_generic_only(self, write_mapping):
        """A preset checks its own signature; options for it are an error."""
        found = problems(write_mapping, """
            source: typeform
            secret: s
            verify: {type: token, header: X-Token}
            phone: a
            flows: [{flow_key: X}]
        """)
        assert found == ["FILE:4: verify: verify options are for source: generic; typeform is "
                         "verified its own way (verify: false turns that off)"]

    def test_generic_secret_needs_a_way_to_check_it(self, write_mapping):
        """A generic secret without `verify` says how to use it."""
        found = problems(write_mapping, "secret: s\nphone: a\nflows: [{flow_key: X}]\n")
        assert found[0].startswith("FILE:1: secret: say how to check it")

    @pytest.mark.parametrize(("verify", "message"), [
        ("{type: token}", "a token is in a header or a query parameter"),
        ("{type: token, header: A, query: b}", "a token is in a header or a query parameter"),
        ("{type: hmac}", "hmac needs the header"),
        ("{type: basic, header: A}", "verify.header: does not apply to type basic"),
        ("{type: hmac, header: A, signed: '{timestamp}.{body}'}", "{timestamp} needs"),
    ])
    def test_generic_verify_options_are_checked(self, write_mapping, verify, message):
        """Each verify type takes its own options."""
        found = problems(write_mapping, f"secret: s\nverify: {verify}\nphone: a\n"
                         "flows: [{flow_key: X}]\n")
        assert any(message in f for f in found), found


class TestCompiledVerification:
    def test_generic_options_are_compiled_once_at_load(self, endpoint):
        """Generic's HMAC options become one scheme at load; its header is a credential."""
        loaded = endpoint("secret: k\nverify: {type: hmac, header: X-Sig, prefix: 'sha256='}\n"
                          + PHONE_FLOW)
        assert isinstance(loaded.verify, Hmac)
        assert (loaded.verify.scheme.header, loaded.verify.scheme.prefix) == ("x-sig", "sha256=")
        assert loaded.credentials == frozenset({"x-sig"})
        signed, _ = loaded.preset.sign("k", loaded, Inbound(b"{}", {}), time.time())
        loaded.preset.verify(loaded, Inbound(b"{}", {k.lower(): v for k, v in signed.items()}),
                             time.time())

    def test_a_query_token_is_a_credential_by_its_name(self, endpoint):
        """A token in a query parameter is never stored, whatever it is called."""
        loaded = endpoint("secret: k\nverify: {type: token, query: Key}\n" + PHONE_FLOW)
        assert loaded.verify == Token("Key", in_header=False)
        assert loaded.credentials == frozenset({"key"})

    def test_presets_verified_their_own_way_have_no_options(self, endpoint):
        """A signed preset keeps verify None (its own way) and no extra credentials."""
        loaded = endpoint("source: typeform\nsecret: s\n" + PHONE_FLOW)
        assert (loaded.verify, loaded.credentials) == (None, frozenset())
        assert loaded.preset.verifies(loaded)


class TestEvaluateRaw:
    SALESFORCE = ("source: salesforce\norganization_id: 00D5g000004XyZ1EAC\n"
                  "phone: item.sObject.Phone\nflows: [{flow_key: X}]\n")

    @staticmethod
    def soap(organization):
        return (b'<?xml version="1.0"?><soapenv:Envelope xmlns:soapenv='
                b'"http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>'
                b'<notifications xmlns="http://soap.sforce.com/2005/09/outbound">'
                b"<OrganizationId>" + organization + b"</OrganizationId><Notification><Id>n1</Id>"
                b"<sObject><Phone>+919812345678</Phone></sObject></Notification>"
                b"</notifications></soapenv:Body></soapenv:Envelope>")

    def test_parses_admits_then_evaluates(self, endpoint):
        """A body from the allowed organization is parsed as the preset does and mapped."""
        loaded = endpoint(self.SALESFORCE)
        result = evaluate_raw(loaded, self.soap(b"00D5g000004XyZ1EAC"),
                              {"Content-Type": "text/xml"}, {})
        assert [(d.phone, d.dedup_key) for d in result.deliveries] == [("919812345678", "n1")]

    def test_a_body_the_preset_refuses_is_a_failed_result(self, endpoint):
        """Another organization: a failed result saying why, not an exception."""
        loaded = endpoint(self.SALESFORCE)
        result = evaluate_raw(loaded, self.soap(b"00D000000000001AAA"),
                              {"Content-Type": "text/xml"}, {})
        assert result.status == "failed"
        assert str(result.errors[0]).startswith("source: the relay refuses it: OrganizationId")
