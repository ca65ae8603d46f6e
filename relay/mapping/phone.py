"""Phone numbers as Engati wants them: the country code and the number, digits only by default."""

from __future__ import annotations

import phonenumbers

FORMATS = ("digits", "e164")


class PhoneError(ValueError):
    """The value is not a phone number we can send; the message names the value."""


def normalise(value: object, region: str | None = None, fmt: str = "digits") -> str:
    """Return `value` as `919812345678` (digits) or `+919812345678` (e164).

    Spaces, dashes, dots, parentheses and a leading `00` are accepted; a number written
    without a country code takes `region` (an ISO country code such as IN or US).
    """
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise PhoneError(f"expected text or a number, got {_kind(value)}")
    text = str(value).strip()
    if not text:
        raise PhoneError("the value is empty")
    if text.startswith("00"):
        # The international call prefix of most of the world; phonenumbers only knows it
        # as such for regions that use it, so spell it the universal way.
        text = "+" + text[2:]
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as exc:
        if exc.error_type == phonenumbers.NumberParseException.INVALID_COUNTRY_CODE:
            hint = "it has no country code; set phone.region" if not region else (
                "its country code is unknown")
            raise PhoneError(f"{text!r} is not a phone number we can read: {hint}") from None
        raise PhoneError(f"{text!r} is not a phone number") from None
    if not phonenumbers.is_valid_number(number):
        where = f" (region {region})" if region and not text.startswith("+") else ""
        raise PhoneError(f"{text!r} is not a valid phone number{where}")
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return e164 if fmt == "e164" else e164[1:]


def _kind(value: object) -> str:
    return {dict: "an object", list: "a list", bool: "a boolean", float: "a decimal number"}.get(
        type(value), type(value).__name__
    )
