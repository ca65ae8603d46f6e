# mypy: disallow-untyped-decorators=False, allow-subclassing-any
# (jmespath ships no types: its base classes and @signature are Any to mypy)
"""JMESPath functions integrators need and JMESPath lacks.

Every string function passes null through as null, so that a missing field stays missing
(and an attribute built from it is left out) instead of failing the whole webhook.
docs/mapping.md documents each one with an example.
"""

from __future__ import annotations

import json
import re
from typing import Any

import jmespath
from jmespath import exceptions, functions

_TEXT = {"types": ["string", "null"]}
_STRING = {"types": ["string"]}


class FunctionError(exceptions.JMESPathError):
    """A custom function was given a value it cannot work with."""


class RelayFunctions(functions.Functions):
    def call_function(self, function_name: str, resolved_args: list[Any]) -> Any:
        """jmespath's, but a Python error of a function given what it cannot take raised as
        a FunctionError, which fails the field it maps (evaluate.py catches JMESPathError
        only: anything else was a 500 to the sender). jmespath checks the arguments' types
        but not all their values: contains() of text and a number, max_by() and min_by() of
        numbers and text, merge() past its first argument, ceil() of an infinity
        (to_number('1.0e999')), from_json() or a pattern nested too deep, a replacement
        naming no group."""
        try:
            return super().call_function(function_name, resolved_args)
        except exceptions.JMESPathError:
            raise
        except Exception as exc:
            raise FunctionError(f"{function_name}(): {exc}") from None

    @functions.signature(_TEXT)
    def _func_lower(self, s: str | None) -> str | None:
        return None if s is None else s.lower()

    @functions.signature(_TEXT)
    def _func_upper(self, s: str | None) -> str | None:
        return None if s is None else s.upper()

    @functions.signature(_TEXT)
    def _func_title(self, s: str | None) -> str | None:
        return None if s is None else s.title()

    @functions.signature(_TEXT)
    def _func_trim(self, s: str | None) -> str | None:
        return None if s is None else s.strip()

    @functions.signature(_TEXT, _STRING)
    def _func_split(self, s: str | None, sep: str) -> list[str] | None:
        if s is None:
            return None
        return s.split(sep) if sep else s.split()

    @functions.signature(_TEXT, _STRING, _STRING)
    def _func_replace(self, s: str | None, old: str, new: str) -> str | None:
        return None if s is None else s.replace(old, new)

    @functions.signature(_TEXT, _STRING, _STRING)
    def _func_regex_replace(self, s: str | None, pattern: str, new: str) -> str | None:
        return None if s is None else _regex(pattern).sub(new, s)

    @functions.signature(_TEXT, _STRING)
    def _func_matches(self, s: str | None, pattern: str) -> bool:
        return s is not None and _regex(pattern).search(s) is not None

    @functions.signature(_TEXT, _STRING)
    def _func_extract(self, s: str | None, pattern: str) -> str | None:
        # The first capture group of the first match (or the whole match); null if none.
        match = None if s is None else _regex(pattern).search(s)
        if match is None:
            return None
        return match.group(1) if match.re.groups else match.group(0)

    @functions.signature({"types": ["string", "number", "null"]})
    def _func_digits(self, s: str | float | None) -> str | None:
        if s is None:
            return None
        return "".join(ch for ch in str(s) if ch.isdigit())

    @functions.signature({"types": [], "variadic": True})
    def _func_concat(self, *values: Any) -> str:
        # nulls are skipped so that concat(first, ' ', last) works when `last` is missing.
        return "".join(as_text(v) for v in values if v is not None)

    @functions.signature(_TEXT)
    def _func_from_json(self, s: str | None) -> Any:
        if s is None or not s.strip():
            return None
        try:
            return json.loads(s)
        except ValueError as exc:
            raise FunctionError(f"from_json(): the string is not valid JSON ({exc})") from None


def as_text(value: Any) -> str:
    """A value as text: strings as they are, numbers without a needless .0, the rest as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _regex(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise FunctionError(f"invalid regular expression {pattern!r}: {exc}") from None


OPTIONS = jmespath.Options(custom_functions=RelayFunctions())
FUNCTION_TABLE: dict[str, dict[str, Any]] = RelayFunctions.FUNCTION_TABLE
