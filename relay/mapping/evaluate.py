"""A mapping applied to one webhook envelope: planned deliveries out, and every field that
failed. Pure: no I/O, no clock; the intake, the worker's replays, previews and a mapping's
tests all call `evaluate()` on the same objects.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from typing import Any

from jmespath.exceptions import JMESPathError

from relay.errors import FieldError
from relay.mapping.model import Attribute, Delivery, Expr, Mapping, Phone, Result, Rule
from relay.mapping.phone import PhoneError, normalise

MAX_DEPTH = 32  # levels of lists and objects an attribute or id value may nest


def evaluate(mapping: Mapping, envelope: dict[str, Any]) -> Result:
    """Map one envelope `{body, headers, query}` to the Engati deliveries it asks for."""
    if mapping.each is None:
        result = _evaluate_scope(mapping, envelope, None)
        if result.deliveries:
            return result
        return replace(result, key=_event_key(mapping, [envelope]))
    try:
        items = mapping.each.search(envelope)
    except JMESPathError as exc:
        return Result(errors=(FieldError("each", _jmespath_message(exc)),))
    if items is None or items == []:
        return Result(skipped="each: the list is empty")
    if not isinstance(items, list):
        return Result(errors=(FieldError("each", f"expected a list, got {_kind(items)}"),))
    deliveries: list[Delivery] = []
    errors: list[FieldError] = []
    for index, item in enumerate(items):
        one = _evaluate_scope(mapping, {**envelope, "item": item}, index)
        deliveries.extend(one.deliveries)
        errors.extend(one.errors)
    if deliveries:
        return Result(tuple(deliveries), tuple(errors))
    key = _event_key(mapping, [{**envelope, "item": item} for item in items])
    if not errors:
        return Result(skipped="filter: no item passed", key=key)
    return Result(errors=tuple(errors), key=key)


def _event_key(mapping: Mapping, scopes: list[dict[str, Any]]) -> str | None:
    """The dedup key of a webhook that plans nothing: its id, or a digest of its items' ids
    (None unless every one has an id)."""
    keys = [key for scope in scopes
            if (key := _dedup_key(mapping.id, scope, lambda *_: None)) is not None]
    if not keys or len(keys) < len(scopes):
        return None
    if len(keys) == 1 and len(keys[0]) <= 200:
        return keys[0]
    return "sha256:" + hashlib.sha256(json.dumps(keys).encode()).hexdigest()


def _evaluate_scope(mapping: Mapping, scope: dict[str, Any], item: int | None) -> Result:
    prefix = "" if item is None else f"each[{item}]."
    errors: list[FieldError] = []

    def fail(name: str, message: str) -> None:
        errors.append(FieldError(prefix + name, message))

    if mapping.filter is not None:
        try:
            if not _truthy(mapping.filter.search(scope)):
                return Result(skipped="filter")
        except JMESPathError as exc:
            fail("filter", _jmespath_message(exc))
            return Result(errors=tuple(errors))

    phone = _phone(mapping.phone, scope, fail)
    attributes = _attributes(mapping.attributes, scope, fail)
    rule = _flow(mapping, {**scope, "phone": phone, "attributes": attributes}, fail)
    dedup_key = _dedup_key(mapping.id, scope, fail)
    if errors or phone is None or rule is None:
        return Result(errors=tuple(errors))
    flow_key = mapping.flows[rule.number - 1].flow_key
    delivery = Delivery(flow_key, mapping.channel, phone, attributes, dedup_key, item, rule)
    return Result(deliveries=(delivery,))


def _phone(spec: Phone, scope: dict[str, Any], fail: Any) -> str | None:
    try:
        raw = spec.path.search(scope)
    except JMESPathError as exc:
        fail("phone", _jmespath_message(exc))
        return None
    if raw is None or raw == "":
        fail("phone", f"no value at {spec.path.text}")
        return None
    try:
        return normalise(raw, spec.region, spec.format)
    except PhoneError as exc:
        fail("phone", str(exc))
        return None


def _attributes(specs: tuple[Attribute, ...], scope: dict[str, Any], fail: Any) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for spec in specs:
        if spec.path is None:
            values[spec.name] = spec.value
            continue
        try:
            value = spec.path.search(scope)
        except JMESPathError as exc:
            fail(f"attributes.{spec.name}", _jmespath_message(exc))
            continue
        if value is None or value == "":
            value = spec.default
        if value is None or value == "":
            if spec.required:
                fail(f"attributes.{spec.name}", f"required, but no value at {spec.path.text}")
            continue
        if _too_deep(value):
            fail(f"attributes.{spec.name}", f"the value is nested deeper than {MAX_DEPTH} levels")
            continue
        values[spec.name] = value
    return values


def _flow(mapping: Mapping, scope: dict[str, Any], fail: Any) -> Rule | None:
    """The first rule of `flows` that matches, with the ones that did not before it."""
    false: list[str] = []
    for index, flow in enumerate(mapping.flows):
        if flow.when is None:
            return Rule(index + 1, None, tuple(false))
        try:
            if _truthy(flow.when.search(scope)):
                return Rule(index + 1, flow.when.text, tuple(false))
        except JMESPathError as exc:
            fail(f"flows[{index}].when", _jmespath_message(exc))
            return None
        false.append(flow.when.text)
    tried = "; ".join(f"rule {n} `{w}` was false" for n, w in enumerate(false, 1))
    fail("flows", "no flow matched and there is no fallback (an entry without `when`)"
         + (f": {tried}" if tried else ""))
    return None


def _dedup_key(expr: Expr | None, scope: dict[str, Any], fail: Any) -> str | None:
    if expr is None:
        return None
    try:
        value = expr.search(scope)
    except JMESPathError as exc:
        fail("id", _jmespath_message(exc))
        return None
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value
    if _too_deep(value):
        fail("id", f"the value is nested deeper than {MAX_DEPTH} levels")
        return None
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def _too_deep(value: Any) -> bool:
    """Whether a value nests lists or objects more than MAX_DEPTH deep (found without
    recursion: storing and serialising it would recurse once a level)."""
    level = [value]
    for _ in range(MAX_DEPTH + 1):
        level = [child for v in level if isinstance(v, list | dict)
                 for child in (v.values() if isinstance(v, dict) else v)]
        if not level:
            return False
    return True


def _truthy(value: Any) -> bool:
    # JMESPath's notion of truth: false, null and empty strings, lists and objects are false
    # (0 is true, unlike in Python).
    if value is None or value is False:
        return False
    return len(value) > 0 if isinstance(value, str | list | dict) else True


def _jmespath_message(exc: JMESPathError) -> str:
    return str(exc).replace("\n", " ").strip()


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "text", bool: "a boolean"}.get(
        type(value), "a number"
    )

