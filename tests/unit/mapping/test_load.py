"""Loading mapping text: every problem reported at once, with file, line and key.

The mapping package is pure: these tests hand it text and an environment, no file.
"""

from __future__ import annotations

import textwrap

import pytest

from relay.errors import MappingLoadError
from relay.mapping.load import load, schema

MINIMAL = "phone: body.phone\nflows: [{flow_key: X}]\n"


def problems(text, env=None):
    with pytest.raises(MappingLoadError) as info:
        load(textwrap.dedent(text), "FILE", env or {})
    return [str(p) for p in info.value.problems]


class TestSyntax:
    def test_invalid_yaml_names_the_line(self):
        """A YAML syntax error is reported with its line."""
        found = problems("phone: body.phone\nflows: [\n  - x\n")
        assert len(found) == 1
        assert found[0].startswith("FILE:3: invalid YAML")

    def test_empty_file(self):
        """An empty file says so."""
        assert problems("") == ["FILE: the file is empty"]

    def test_not_an_object(self):
        """A file that is a list, not keys, is refused."""
        assert problems("- a\n- b\n") == [
            "FILE:1: a mapping file is a YAML object of keys"]

    def test_duplicate_key(self):
        """A key written twice is an error, not a silent override."""
        found = problems("phone: a\nphone: b\nflows: [{flow_key: X}]\n")
        assert found == ["FILE:2: phone: the key appears twice; the later one would win"]


class TestSchema:
    def test_unknown_top_level_key_suggests_the_right_one(self):
        """A typo in a key is an error that names the line and the likely intended key."""
        found = problems("""
            phone: body.phone
            atributes: {name: body.name}
            flows: [{flow_key: X}]
        """)
        assert found == ["FILE:3: atributes: unknown key; did you mean 'attributes'?"]

    def test_unknown_nested_key(self):
        """Unknown keys inside list entries name their full path."""
        found = problems("""
            phone: body.phone
            flows:
              - flowkey: X
        """)
        assert "FILE:4: flows[0].flowkey: unknown key; did you mean 'flow_key'?" in found
        assert "FILE:4: flows[0]: 'flow_key' is required here" in found

    def test_missing_required_keys(self):
        """A file without phone and flows names both."""
        found = problems("channel: whatsapp\n")
        assert found == [
            "FILE:1: phone is required (only a mapping with cancel: may leave out both phone "
            "and flows)",
            "FILE:1: flows is required (only a mapping with cancel: may leave out both phone "
            "and flows)"]

    def test_a_cancel_only_mapping_with_delivery_keys_is_refused(self):
        """Without phone and flows a mapping only cancels: a schedule or attributes there
        would be ignored, so they are problems (a phone and flows were likely forgotten)."""
        found = problems("""
            cancel: {key: body.token}
            schedule: {delay: 1h}
            attributes: {name: body.name}
        """)
        assert found == [
            "FILE:3: schedule: a mapping without phone and flows only cancels: schedule "
            "applies to deliveries (add phone and flows, or leave it out)",
            "FILE:4: attributes: a mapping without phone and flows only cancels: attributes "
            "applies to deliveries (add phone and flows, or leave it out)"]
        assert load("cancel: {key: body.token, mappings: [nudges]}\n", "FILE", {}).phone is None

    def test_an_unquoted_time_in_a_test_gets_a_quoting_hint(self):
        """`send_at: 2026-12-03T10:00:00Z` is a YAML timestamp, not the text a test wants."""
        found = problems("""
            phone: body.phone
            flows: [{flow_key: X}]
            tests:
              - name: t
                body: {}
                expect: {send_at: 2026-12-03T10:00:00Z}
        """)
        assert len(found) == 1 and found[0].startswith("FILE:7: tests[0].expect.send_at: ")
        assert found[0].endswith("(YAML reads an unquoted 2026-12-03 or 2026-12-03T10:00:00Z "
                                 "as a date: put the value in quotes)")

    def test_yaml_boolean_gets_a_quoting_hint(self):
        """`region: NO` (Norway) is read by YAML as false; the error says to quote it."""
        found = problems("""
            phone: {path: body.phone, region: NO}
            flows: [{flow_key: X}]
        """)
        assert len(found) == 1
        assert found[0].startswith("FILE:2: phone.region: False is not of type 'string'")
        assert "put the value in quotes" in found[0]

    def test_bad_enum(self):
        """An unknown channel lists the allowed ones."""
        found = problems("""
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
    def test_parse_error_names_file_line_key_and_column(self):
        """A broken expression reports jmespath's column and caret."""
        found = problems("""
            phone: body.phone
            flows:
              - when: attributes.category == = 'VIP'
                flow_key: X
        """)
        assert len(found) == 1
        assert found[0].startswith("FILE:4: flows[0].when: ")
        assert "Parse error at column 23" in found[0]
        assert "^" in found[0]

    def test_unknown_function_suggests_a_name(self):
        """Functions are checked at load time, not when the first webhook arrives."""
        found = problems("""
            phone: body.phone
            attributes:
              name: lowr(body.name)
            flows: [{flow_key: X}]
        """)
        assert found == ["FILE:4: attributes.name: unknown function lowr(); did you mean lower()?"]

    def test_wrong_number_of_arguments(self):
        """A function called with the wrong arity is a load error."""
        found = problems("""
            phone: replace(body.phone, '-')
            flows: [{flow_key: X}]
        """)
        assert found == ["FILE:2: phone: replace() takes 3 argument(s), got 2"]

    def test_a_slice_step_of_zero_is_a_load_error(self):
        """`[::0]` parses, but slicing with it raised Python's ValueError on each webhook
        whose value was a list (a 500 to the sender); the JMESPath specification makes it
        an error of the expression."""
        found = problems("""
            phone: body.phones[::0] | [0]
            flows: [{flow_key: X}]
        """)
        assert found == ["FILE:2: phone: a slice's step may not be 0 (`[::0]`)"]

    def test_all_problems_are_reported_together(self):
        """Several broken expressions are all listed, not only the first."""
        found = problems("""
            phone: body.phone[
            filter: "=="
            flows: [{flow_key: X, when: "a =="}]
        """)
        assert [f.split(":")[2].strip() for f in found] == ["phone", "filter", "flows[0].when"]


class TestEnvironment:
    def test_missing_variable_is_named(self):
        """An unset ${NAME} names the variable and where it is used."""
        found = problems("""
            engati:
              api_key: ${ENGATI_KEY_FOR_SHOP}
            phone: body.phone
            flows: [{flow_key: X}]
        """)
        assert len(found) == 1
        assert found[0].startswith(
            "FILE:3: engati.api_key: environment variable ENGATI_KEY_FOR_SHOP is not set")

    def test_variables_defaults_and_escapes(self):
        """${NAME} is read, ${NAME:-default} falls back, and $$ is a literal dollar."""
        mapping = load(textwrap.dedent("""
            engati: {customer_id: "${CID}", bot_key: "${BOT:-b0b}", api_key: "k$$1"}
            phone: body.phone
            flows: [{flow_key: X}]
        """), "FILE", {"CID": "42"})
        assert (mapping.engati.customer_id, mapping.engati.bot_key) == ("42", "b0b")
        assert mapping.engati.api_key == "k$1"

    def test_engati_settings_default_to_the_environment(self):
        """Each engati key falls back to ENGATI_<KEY>; the base URL to the public API."""
        loaded = load(MINIMAL, "FILE", {"ENGATI_CUSTOMER_ID": "7", "ENGATI_BOT_KEY": "b",
                                        "ENGATI_API_KEY": "k"})
        assert loaded.engati.missing() == []
        assert loaded.engati.base_url == "https://api.engati.ai"
        assert load(MINIMAL, "FILE", {"ENGATI_BASE_URL": "http://127.0.0.1:9/"}
                    ).engati.base_url == "http://127.0.0.1:9"
        assert load(MINIMAL, "FILE", {}).engati.missing() == ["customer_id", "bot_key", "api_key"]


class TestDefaults:
    def test_id_and_each_defaults_apply_where_the_text_is_silent(self):
        """The caller's defaults (a preset's) fill `id` and `each`; the text's own win."""
        loaded = load(MINIMAL, "FILE", {}, id="item.Id", each="body.items")
        assert (loaded.id.text, loaded.each.text) == ("item.Id", "body.items")
        own = load("id: body.ref\n" + MINIMAL, "FILE", {}, id="item.Id")
        assert (own.id.text, own.each) == ("body.ref", None)

    def test_sender_keys_are_left_to_the_caller(self):
        """`secret:` with an unset ${NAME} is no problem of the mapping: the endpoint locks."""
        loaded = load("secret: ${UNSET}\n" + MINIMAL, "FILE", {})
        assert loaded.flows[0].flow_key == "X"


class TestSemantics:
    def test_rcs_needs_v2(self):
        """RCS over the v1 API is refused at load time."""
        found = problems("""
            engati: {api: v1}
            channel: rcs
            phone: body.phone
            flows: [{flow_key: X}]
        """)
        assert len(found) == 1
        assert found[0].startswith("FILE:3: channel: rcs needs engati.api v2")

    @pytest.mark.parametrize("name", ["user.channel", "user.phone_no"])
    def test_attribute_cannot_shadow_channel_or_phone(self, name):
        """Attributes named like the relay's own body keys are refused."""
        found = problems(f"""
            phone: body.phone
            attributes:
              {name}: body.x
            flows: [{{flow_key: X}}]
        """)
        assert len(found) == 1
        assert found[0].startswith(f"FILE:4: attributes.{name}: {name} is set by the relay")

    def test_attribute_needs_path_or_value(self):
        """An attribute object with both path and value, or neither, is refused."""
        found = problems("""
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

    def test_fallback_must_be_last(self):
        """An entry after the fallback could never match, so it is an error."""
        found = problems("""
            phone: body.phone
            flows:
              - flow_key: A
              - when: body.vip
                flow_key: B
        """)
        assert len(found) == 1
        assert found[0].startswith("FILE:5: flows[1]: unreachable")
