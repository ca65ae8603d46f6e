"""Phone numbers in the shape Engati wants: country code and number, digits only by default."""

from __future__ import annotations

import pytest

from relay.mapping.phone import PhoneError, normalise


@pytest.mark.parametrize(
    ("value", "region", "expected"),
    [
        ("+919812345678", None, "919812345678"),
        ("+91 98123 45678", "US", "919812345678"),  # an explicit country code wins
        ("098123 45678", "IN", "919812345678"),  # national with trunk 0
        ("9812345678", "IN", "919812345678"),
        ("919812345678", "IN", "919812345678"),  # country code without +
        ("0091 98123-45678", None, "919812345678"),  # international 00 prefix
        ("00919812345678", "US", "919812345678"),
        ("(415) 555-2671", "US", "14155552671"),
        ("415.555.2671", "us", "14155552671"),
        ("1-415-555-2671", "US", "14155552671"),
        (9812345678, "IN", "919812345678"),  # a JSON number
    ],
)
def test_valid_numbers_become_digits(value, region, expected):
    """Common ways of writing a number all give the same digits."""
    assert normalise(value, region and region.upper()) == expected


def test_e164_keeps_the_plus():
    """format e164 gives +<country><number>."""
    assert normalise("098123 45678", "IN", "e164") == "+919812345678"


@pytest.mark.parametrize(
    ("value", "region", "message"),
    [
        ("12345", "IN", "'12345' is not a valid phone number (region IN)"),
        ("+91 12345", None, "'+91 12345' is not a valid phone number"),
        ("9812345678", None, "it has no country code; set phone.region"),
        ("", "IN", "the value is empty"),
        ("   ", "IN", "the value is empty"),
        ("call me", "IN", "'call me' is not a phone number"),
        (True, "IN", "expected text or a number, got a boolean"),
        ({"n": 1}, "IN", "expected text or a number, got an object"),
    ],
)
def test_invalid_numbers_are_named(value, region, message):
    """An unusable value raises an error that says what the value was and why."""
    with pytest.raises(PhoneError) as info:
        normalise(value, region)
    assert message in str(info.value)
