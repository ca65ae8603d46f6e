"""A mapping applied to one webhook envelope: planned deliveries out, and every field that
failed. Pure: no I/O, no clock; the intake, the worker's replays, previews and a mapping's
tests all call `evaluate()` on the same objects.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from typing import Any
from urllib.parse import quote

from jmespath.exceptions import JMESPathError

from relay.errors import FieldError
from relay.mapping.model import (
    Attribute,
    Delivery,
    Expr,
    Fetch,
    Lookup,
    Mapping,
    Phone,
    Result,
    Rule,
)
from relay.mapping.phone import PhoneError, normalise

MAX_DEPTH = 32  # levels of lists and objects an attribute or id value may nest


def evaluate(mapping: Mapping, envelope: dict[str, Any]) -> Result:
    """Map one envelope `{body, headers, query}` to the Engati deliveries it asks for; with
    `lookup:`, to the fetches to make first (see `evaluate_fetched`)."""
    if mapping.each is None:
        result = _evaluate_scope(mapping, envelope, None)
        if result.deliveries or result.lookups:
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
    fetches: list[Fetch] = []
    for index, item in enumerate(items):
        one = _evaluate_scope(mapping, {**envelope, "item": item}, index)
        deliveries.extend(one.deliveries)
        fetches.extend(one.lookups)
        errors.extend(one.errors)
    if deliveries or fetches:
        return Result(tuple(deliveries), tuple(errors), lookups=tuple(fetches))
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


def evaluate_fetched(mapping: Mapping, envelope: dict[str, Any], item: int | None,
                     answer: Any) -> Result:
    """The rest of a mapping with `lookup:`, once the worker fetched `answer` for `item` (the
    index under `each`, or None): the delivery (or skip, or errors) of that one item, with
    the answer seen under the lookup's name."""
    assert mapping.lookup is not None
    scope = {**envelope, mapping.lookup.name: answer}
    if item is not None:
        try:
            items = mapping.each.search(envelope) if mapping.each else None
        except JMESPathError as exc:
            return Result(errors=(FieldError("each", _jmespath_message(exc)),))
        if not isinstance(items, list) or item >= len(items):
            return Result(errors=(FieldError(f"each[{item}]", "the item is no longer in the "
                                             "list `each` gives (was the mapping changed?)"),))
        scope["item"] = items[item]
    return _evaluate_scope(mapping, scope, item, fetched=True)


def _evaluate_scope(mapping: Mapping, scope: dict[str, Any], item: int | None,
                    fetched: bool = False) -> Result:
    prefix = "" if item is None else f"each[{item}]."
    errors: list[FieldError] = []

    def fail(name: str, message: str) -> None:
        errors.append(FieldError(prefix + name, message))

    if mapping.lookup is not None and not fetched:
        # Nothing else can be mapped before the fetch: the filter too may read its answer.
        url = _url(mapping.lookup, scope, fail)
        dedup_key = _dedup_key(mapping.id, scope, fail)
        if errors or url is None:
            return Result(errors=tuple(errors))
        return Result(lookups=(Fetch(url, dedup_key, item),))

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


def _url(lookup: Lookup, scope: dict[str, Any], fail: Any) -> str | None:
    """The lookup's URL for this webhook: each {expression} URL-quoted whole, so that a value
    cannot reach another path, host or query of the server."""
    pieces = []
    for part in lookup.parts:
        if isinstance(part, str):
            pieces.append(part)
            continue
        try:
            value = part.search(scope)
        except JMESPathError as exc:
            fail("lookup.url", _jmespath_message(exc))
            return None
        if value is None:
            fail("lookup.url", f"no value at {part.text}")
            return None
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            fail("lookup.url", f"{{{part.text}}} gave {_kind(value)}; expected text or a number")
            return None
        text = str(value)
        if text in ("", ".", ".."):
            fail("lookup.url", f"{{{part.text}}} gave {text!r}, which names no object")
            return None
        pieces.append(quote(text, safe=""))
    return "".join(pieces)


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

