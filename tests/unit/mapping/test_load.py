"""Loading mapping files: every problem reported at once, with file, line and key."""

from __future__ import annotations

import pytest

from relay.errors import MappingLoadError
from relay.mapping.load import load_file, load_folder, schema


def problems(write_mapping, text, env=None):
    path = write_mapping(text)
    with pytest.raises(MappingLoadError) as info:
        load_file(path, env=env or {})
    return [str(p).replace(str(path), "FILE") for p in info.value.problems]


class TestSyntax:
    def test_invalid_yaml_names_the_line(self, write_mapping):
        """A YAML syntax error is reported with its line."""
        found = problems(write_mapping, "phone: body.phone\nflows: [\n  - x\n")
        assert len(found) == 1
        assert found[0].startswith("FILE:3: invalid YAML")

    def test_empty_file(self, write_mapping):
        """An empty file says so."""
        assert problems(write_mapping, "") == ["FILE: the file is empty"]

    def test_not_an_object(self, write_mapping):
        """A file that is a list, not keys, is refused."""
        assert problems(write_mapping, "- a\n- b\n") == [
            "FILE:1: a mapping file is a YAML object of keys"]

    def test_duplicate_key(self, write_mapping):
        """A key written twice is an error, not a silent override."""
        found = problems(write_mapping, "phone: a\nphone: b\nflows: [{flow_key: X}]\n")
        assert found == ["FILE:2: phone: the key appears twice; the later one would win"]


class TestSchema:
    def test_unknown_top_level_key_suggests_the_right_one(self, write_mapping):
        """A typo in a key is an error that names the line and the likely intended key."""
        found = problems(write_mapping, """
            phone: body.phone
            atributes: {name: body.name}
            flows: [{flow_key: X}]
        """)
        assert found == ["FILE:3: atributes: unknown key; did you mean 'attributes'?"]

    def test_unknown_nested_key(self, write_mapping):
        """Unknown keys inside list entries name their full path."""
        found = problems(write_mapping, """
            phone: body.phone
            flows:
              - flowkey: X
        """)
        assert "FILE:4: flows[0].flowkey: unknown key; did you mean 'flow_key'?" in found
        assert "FILE:4: flows[0]: 'flow_key' is required here" in found

    def test_missing_required_keys(self, write_mapping):
        """A file without phone and flows names both."""
        found = problems(write_mapping, "channel: whatsapp\n")
        assert found == ["FILE:1: 'phone' is required here", "FILE:1: 'flows' is required here"]

    def test_yaml_boolean_gets_a_quoting_hint(self, write_mapping):
        """`region: NO` (Norway) is read by YAML as false; the error says to quote it."""
        found = problems(write_mapping, """
            phone: {path: body.phone, region: NO}
            flows: [{flow_key: X}]
        """)
        assert len(found) == 1
        assert found[0].startswith("FILE:2: phone.region: False is not of type 'string'")
        assert "put the value in quotes" in found[0]

    def test_bad_enum(self, write_mapping):
        """An unknown channel lists the allowed ones."""
        found = problems(write_mapping, """
            phone: body.phone
            channel: sms
            flows: [{flow_key: X}]
        """)
        assert found == ["FILE:3: channel: 'sms' is not one of ['whatsapp', 'rcs']"]

    def test_schema_is_valid_json_schema(self):
        """The shipped schema is itself valid, for editors that load it."""
        from jsonschema import Draft202012Validator

        Draft202012Validator.check_schema(schema())


class TestExpressions:
    def test_parse_error_names_file_line_key_and_column(self, write_mapping):
        """A broken expression reports jmespath's column and caret."""
        found = problems(write_mapping, """
            phone: body.phone
            flows:
              - when: attributes.category == = 'VIP'
                flow_key: X
        """)
        assert len(found) == 1
        assert found[0].startswith("FILE:4: flows[0].when: ")
        assert "Parse error at column 23" in found[0]
        assert "^" in found[0]

    def test_unknown_function_suggests_a_name(self, write_mapping):
        """Functions are checked at load time, not when the first webhook arrives."""
        found = problems(write_mapping, """
            phone: body.phone
            attributes:
              name: lowr(body.name)
            flows: [{flow_key: X}]
        """)
        assert found == ["FILE:4: attributes.name: unknown function lowr(); did you mean lower()?"]

    def test_wrong_number_of_arguments(self, write_mapping):
        """A function called with the wrong arity is a load error."""
        found = problems(write_mapping, """
            phone: replace(body.phone, '-')
            flows: [{flow_key: X}]
        """)
        assert found == ["FILE:2: phone: replace() takes 3 argument(s), got 2"]

    def test_all_problems_are_reported_together(self, write_mapping):
        """Several broken expressions are all listed, not only the first."""
        found = problems(write_mapping, """
            phone: body.phone[
            filter: "=="
            flows: [{flow_key: X, when: "a =="}]
        """)
        assert [f.split(":")[2].strip() for f in found] == ["phone", "filter", "flows[0].when"]


class TestEnvironment:
    def test_missing_variable_is_named(self, write_mapping):
        """An unset ${NAME} names the variable and where it is used."""
        found = problems(write_mapping, """
            engati:
              api_key: ${ENGATI_KEY_FOR_SHOP}
            phone: body.phone
            flows: [{flow_key: X}]
        """)
        assert len(found) == 1
        assert found[0].startswith(
            "FILE:3: engati.api_key: environment variable ENGATI_KEY_FOR_SHOP is not set")

    def test_variables_defaults_and_escapes(self, write_mapping):
        """${NAME} is read, ${NAME:-default} falls back, and $$ is a literal dollar."""
        path = write_mapping("""
            engati: {customer_id: "${CID}", bot_key: "${BOT:-b0b}", api_key: "k$$1"}
            phone: body.phone
            flows: [{flow_key: X}]
        """)
        mapping = load_file(path, env={"CID": "42"})
        assert (mapping.engati.customer_id, mapping.engati.bot_key) == ("42", "b0b")
        assert mapping.engati.api_key == "k$1"

    def test_engati_settings_default_to_the_environment(self, mapping):
        """Each engati key falls back to ENGATI_<KEY>; the base URL to the public API."""
        loaded = mapping(env={"ENGATI_CUSTOMER_ID": "7", "ENGATI_BOT_KEY": "b",
                              "ENGATI_API_KEY": "k"})
        assert loaded.engati.missing() == []
        assert loaded.engati.base_url == "https://api.engati.ai"
        assert mapping(env={"ENGATI_BASE_URL": "http://127.0.0.1:9/"}).engati.base_url == (
            "http://127.0.0.1:9")
        assert mapping().engati.missing() == ["customer_id", "bot_key", "api_key"]


class TestSemantics:
    def test_rcs_needs_v2(self, write_mapping):
        """RCS over the v1 API is refused at load time."""
        found = problems(write_mapping, """
            engati: {api: v1}
            channel: rcs
            phone: body.phone
            flows: [{flow_key: X}]
        """)
        assert len(found) == 1
        assert found[0].startswith("FILE:3: channel: rcs needs engati.api v2")

    @pytest.mark.parametrize("name", ["user.channel", "user.phone_no"])
    def test_attribute_cannot_shadow_channel_or_phone(self, write_mapping, name):
        """Attributes named like the relay's own body keys are refused."""
        found = problems(write_mapping, f"""
            phone: body.phone
            attributes:
              {name}: body.x
            flows: [{{flow_key: X}}]
        """)
        assert len(found) == 1
        assert found[0].startswith(f"FILE:4: attributes.{name}: {name} is set by the relay")

    def test_attribute_needs_path_or_value(self, write_mapping):
        """An attribute object with both path and value, or neither, is refused."""
        found = problems(write_mapping, """
            phone: body.phone
            attributes:
              a: {path: body.a, value: 1}
              b: {required: true}
            flows: [{flow_key: X}]
        """)
        assert ("FILE:4: attributes.a: give either `path` (an expression) or `value` "
                "(a constant), not both") in found
        assert any(f.startswith("FILE:5: attributes.b: give either") and f.endswith("neither")
                   for f in found)

    def test_fallback_must_be_last(self, write_mapping):
        """An entry after the fallback could never match, so it is an error."""
        found = problems(write_mapping, """
            phone: body.phone
            flows:
              - flow_key: A
              - when: body.vip
                flow_key: B
        """)
        assert len(found) == 1
        assert found[0].startswith("FILE:5: flows[1]: unreachable")

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
            load_file(path, env={})


class TestFolder:
    def test_duplicate_endpoint_names_are_refused(self, tmp_path):
        """leads.yaml and leads.yml would both serve /hooks/leads."""
        for suffix in (".yaml", ".yml"):
            (tmp_path / f"leads{suffix}").write_text("phone: a\nflows: [{flow_key: X}]\n")
        with pytest.raises(MappingLoadError, match=r"endpoint /hooks/leads is also"):
            load_folder(tmp_path, env={})

    def test_problems_of_all_files_are_reported(self, tmp_path):
        """A folder with two broken files reports both."""
        (tmp_path / "a.yaml").write_text("phone: a\n")
        (tmp_path / "b.yaml").write_text("flows: [{flow_key: X}]\n")
        (tmp_path / "notes.txt").write_text("not a mapping")
        with pytest.raises(MappingLoadError) as info:
            load_folder(tmp_path, env={})
        assert [p.file.rsplit("/", 1)[1] for p in info.value.problems] == ["a.yaml", "b.yaml"]

    def test_missing_folder(self, tmp_path):
        """A folder that does not exist is a clear error."""
        with pytest.raises(MappingLoadError, match="no such folder"):
            load_folder(tmp_path / "nope")


class TestVerification:
    def test_signed_sender_needs_a_secret(self, write_mapping):
        """A signed preset without `secret` is refused, naming the variable to use."""
        found = problems(write_mapping, "source: stripe\nphone: a\nflows: [{flow_key: X}]\n")
        assert found == ["FILE:1: source: stripe signs its webhooks: add secret: "
                         "${STRIPE_WEBHOOK_SECRET}, or verify: false to accept unsigned ones"]

    def test_verify_false_is_explicit_and_allowed(self, mapping):
        """verify: false loads without a secret."""
        loaded = mapping("source: stripe\nverify: false\nphone: a\nflows: [{flow_key: X}]\n")
        assert loaded.verify is False
        assert not loaded.source.verifies(loaded)

    def test_unset_secret_locks_instead_of_failing(self, mapping):
        """${NAME} unset in `secret` loads the mapping locked, naming the variable."""
        loaded = mapping("source: typeform\nsecret: ${TF_SECRET}\nphone: a\n"
                         "flows: [{flow_key: X}]\n")
        assert loaded.locked == "TF_SECRET is not set"
        unlocked = mapping("source: typeform\nsecret: ${TF_SECRET}\nphone: a\n"
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
