"""Bodies become JSON for the expressions: JSON as it is, forms and XML as objects."""

from __future__ import annotations

import pytest

from relay.errors import BodyError
from relay.sources.body import content_type_for, parse_body
from relay.sources.redact import REDACTED, redact


def test_bodies_become_objects():
    """Forms and XML: a repeated name is a list, namespaces and attributes dropped, nil null."""
    assert parse_body(b"a=1&b=2&a=3&c=", "application/x-www-form-urlencoded") == {
        "a": ["1", "3"], "b": "2", "c": ""}
    xml = (b'<r xmlns:x="urn:x" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
           b'<x:i k="v">1</x:i><i>2</i><n xsi:nil="true"/><o><p>3</p></o></r>')
    assert parse_body(xml, "text/xml") == {"r": {"i": ["1", "2"], "n": None, "o": {"p": "3"}}}


def test_content_type_is_guessed_from_an_example_file_name():
    """Example bodies next to a mapping get the type their suffix says."""
    assert content_type_for("examples/a.json") == "application/json"
    assert content_type_for("examples/a.xml") == "text/xml"


def test_xml_with_a_dtd_is_refused():
    """DTDs and entities (billion laughs, external entities) are refused before parsing."""
    with pytest.raises(BodyError, match="DTD or entities"):
        parse_body(b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "a">]><l>&a;</l>', "text/xml")


@pytest.mark.parametrize("name", ["x-api-key", "X-Webhook-Token", "x-" + "a" * 80 + "-secret"])
def test_credential_names_are_redacted_whatever_their_length(name):
    """Names are tested once each when short (a bounded cache), every time when long."""
    for _ in range(2):
        assert redact({name: "s3cret", "user-agent": "Typeform"}, ()) == {
            name: REDACTED, "user-agent": "Typeform"}
