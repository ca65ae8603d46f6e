"""The static checks of a mapping's expressions (relay/mapping/lint.py): warnings with the
file, the line and a fix, while the mapping still loads."""

from __future__ import annotations

import json
import textwrap

import pytest
from click.testing import CliRunner

from relay.cli import main
from relay.mapping.load import load
from relay.sources import load_endpoint, mapping_files
from tests.conftest import MAPPINGS

ENGATI = {"ENGATI_CUSTOMER_ID": "1", "ENGATI_BOT_KEY": "b", "ENGATI_API_KEY": "k"}


def warnings(text: str) -> list[str]:
    mapping = load(textwrap.dedent(text), "m.yaml", ENGATI)
    return [str(w) for w in mapping.warnings]


class TestAttributes:
    def test_a_when_naming_an_undefined_attribute_warns_with_a_guess(self):
        (warning,) = warnings("""
            phone: body.phone
            attributes:
              category: body.category
            flows:
              - when: attributes.categroy == 'VIP'
                flow_key: A
              - flow_key: B
        """)
        assert warning.startswith("m.yaml:6: flows[0].when: attributes.categroy is not an "
                                  "attribute of this mapping")
        assert "did you mean attributes.category?" in warning

    def test_defined_attributes_phone_and_the_envelope_pass(self):
        assert warnings("""
            phone: body.phone
            attributes: {category: body.category, tier: {value: gold}}
            flows:
              - when: attributes.category == 'VIP' && attributes.tier == 'gold' && phone != '1'
                flow_key: A
              - when: headers."x-region" == 'north' && query.src == 'ad'
                flow_key: B
              - flow_key: C
        """) == []

    def test_attributes_outside_a_when_are_always_null(self):
        (warning,) = warnings("""
            phone: body.phone
            attributes: {name: body.name, greeting: "join(' ', [attributes.name])"}
            flows: [{flow_key: A}]
        """)
        assert "attributes.greeting.path" not in warning  # the short form: no path key
        assert warning.startswith("m.yaml:3: attributes.greeting: `attributes` is seen by "
                                  "flows[].when only")


class TestDoubleQuotes:
    @pytest.mark.parametrize("expression", [
        'body.city == "Mumbai"',
        '"Mumbai" == body.city',
        'contains(body.tags, "vip")',
        'length(body.answers[?type == "phone_number"]) > `0`',
        'body.answers[?starts_with(ref, "lead")] | [0] != null && `true`',
    ])
    def test_a_double_quoted_text_warns_with_the_fix(self, expression):
        found = warnings(f"""
            phone: body.phone
            filter: {json.dumps(expression)}
            flows: [{{flow_key: A}}]
        """)
        quoted = [w for w in found if "is a field name" in w and "single quotes" in w]
        assert quoted, found
        assert quoted[0].startswith("m.yaml:3: filter: \"")
        word = quoted[0].split('"')[1]
        assert f"write '{word}' (or `\"{word}\"`)" in quoted[0]

    @pytest.mark.parametrize("expression", [
        'headers."x-region" == \'north\'',
        'body.answers[?"first-name" == \'Asha\'] | [0] != `null`',
        'body.city == \'Mumbai\' || body.city == `"Pune"`',
        'body."content-type"',
    ])
    def test_quoted_keys_are_not_texts(self, expression):
        assert warnings(f"""
            phone: body.phone
            filter: {json.dumps(expression)}
            flows: [{{flow_key: A}}]
        """) == []


class TestTheEnvelope:
    def test_a_path_without_body_warns_did_you_mean(self):
        (warning,) = warnings("""
            phone: form_response.phone
            flows: [{flow_key: A}]
        """)
        assert warning.startswith("m.yaml:2: phone: `form_response` is not a key of what "
                                  "expressions see (body, headers, query)")
        assert warning.endswith("did you mean body.form_response?")

    def test_null_true_and_false_are_fields_unless_in_backticks(self):
        (warning,) = warnings("""
            phone: body.phone
            filter: body.x == null
            flows: [{flow_key: A}]
        """)
        assert "`null` is a field name in JMESPath" in warning and "`` `null` ``" in warning

    def test_item_is_there_under_each_only(self):
        assert "`item` is set under `each` only" in warnings("""
            phone: item.phone
            flows: [{flow_key: A}]
        """)[0]
        assert warnings("""
            each: body.leads
            phone: item.phone
            attributes: {name: item.name, ref: body.ref}
            flows: [{when: item.vip, flow_key: A}, {flow_key: B}]
        """) == []

    def test_projections_filters_and_functions_read_their_elements(self):
        """Names inside a filter, after a pipe or in &expr refer to elements, not the top."""
        assert warnings("""
            phone: body.answers[?type=='phone_number'].phone_number | [0]
            attributes:
              first: sort_by(body.items, &price)[0].name
              names: body.people[*].name
              keys: keys(body) | [0]
              all: body.*.value
            flows: [{flow_key: A}]
        """) == []


@pytest.mark.parametrize("path", mapping_files(MAPPINGS), ids=lambda p: p.stem)
def test_no_example_mapping_warns(path, monkeypatch):
    """Every example in mappings/ is clean: no false positives, and no true ones."""
    for name, value in ENGATI.items():
        monkeypatch.setenv(name, value)
    assert [str(w) for w in load_endpoint(path).mapping.warnings] == []


class TestCheck:
    TEXT = "source: generic\nverify: false\nphone: body.phone\nfilter: body.city == \"Pune\"\n" \
           "flows: [{flow_key: A}]\n"

    def test_warnings_print_and_exit_0_and_strict_exits_1(self, tmp_path, monkeypatch):
        for name, value in ENGATI.items():
            monkeypatch.setenv(name, value)
        path = tmp_path / "m.yaml"
        path.write_text(self.TEXT)
        result = CliRunner().invoke(main, ["check", str(path)])
        assert result.exit_code == 0, result.output
        assert f"  warn {path}:4: filter: \"Pune\" is a field name here" in result.output
        assert "  state ok" in result.output
        strict = CliRunner().invoke(main, ["check", "--strict", str(path)])
        assert strict.exit_code == 1 and "warning(s)" in strict.output
