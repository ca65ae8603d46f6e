"""Phone candidates in a sample: every string value read by libphonenumber (a number
anywhere in a text too), and the values under keys named like phone, mobile, whatsapp,
contact or tel. Best first: a number under such a key, that is the whole value, a mobile."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import phonenumbers

_PHONE_KEY = re.compile(r"phone|mobile|whatsapp|contact|(^|_)tel($|_)|cell", re.IGNORECASE)
_MOBILE = (phonenumbers.PhoneNumberType.MOBILE,
           phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE)


@dataclass(frozen=True)
class Candidate:
    path: str  # a JMESPath expression that gives the value
    key: str  # the key path it was found under, as written for people
    number: str  # E.164
    whole: bool  # the value is the number (else the number is inside a text)
    score: int


def is_phone_key(key: str) -> bool:
    return bool(_PHONE_KEY.search(key))


def find_phones(leaves: list[tuple[str, str, Any]], region: str | None) -> list[Candidate]:
    """`leaves`: (path, key, scalar value). Candidates best first, one per path."""
    found: dict[str, Candidate] = {}
    for path, key, value in leaves:
        if isinstance(value, bool) or not isinstance(value, str | int):
            continue
        named = is_phone_key(key)
        if isinstance(value, int) and not named:
            continue
        text = str(value).strip()
        if not text or len(text) > 2000:
            continue
        for match in phonenumbers.PhoneNumberMatcher(text, region or "ZZ",
                                                     leniency=phonenumbers.Leniency.VALID):
            number = match.number
            whole = match.raw_string.strip() == text
            mobile = phonenumbers.number_type(number) in _MOBILE
            score = 4 * named + 2 * whole + mobile
            candidate = Candidate(path, key, phonenumbers.format_number(
                number, phonenumbers.PhoneNumberFormat.E164), whole, score)
            if path not in found or found[path].score < score:
                found[path] = candidate
        if path not in found and named:
            try:
                number = phonenumbers.parse(text, region)
            except phonenumbers.NumberParseException:
                continue
            if phonenumbers.is_valid_number(number):
                found[path] = Candidate(path, key, phonenumbers.format_number(
                    number, phonenumbers.PhoneNumberFormat.E164), True, 4 + 2)
    return sorted(found.values(), key=lambda c: -c.score)
