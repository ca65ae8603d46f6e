"""A mapping applied to one webhook envelope: planned deliveries out, and every field that
failed. Pure: no I/O, and no clock but the time a webhook arrived, which the caller passes
(`now`; read from the clock only when a mapping with `schedule:` or `quiet_hours:` is given
none). The intake, the worker's replays, previews and a mapping's tests all call
`evaluate()` on the same objects.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import replace
from typing import Any
from urllib.parse import quote

from jmespath.exceptions import JMESPathError

from relay.errors import FieldError
from relay.mapping import schedule as timing
from relay.mapping.model import (
    Attribute,
    Cancellation,
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


MAX_CANCEL_KEYS = 100  # keys one webhook's `cancel:` may name
MAX_KEY = 500  # characters of a key as stored; a longer one is stored as its digest


def evaluate(mapping: Mapping, envelope: dict[str, Any], now: float | None = None) -> Result:
    """Map one envelope `{body, headers, query}` that arrived at `now` to the Engati
    deliveries it asks for (and when each is sent); with `lookup:`, to the fetches to make
    first (see `evaluate_fetched`); with `cancel:`, to what it cancels."""
    if now is None and (mapping.schedule or mapping.quiet_hours):
        now = time.time()
    result = _planned(mapping, envelope, now)
    if mapping.cancel is None:
        return result
    cancels, errors = _cancels(mapping, envelope)
    if mapping.phone is None and not cancels and not errors:
        result = replace(result, skipped="cancel: nothing to cancel"
                         + (" (cancel.when was false)" if mapping.cancel.when else ""))
    return replace(result, cancels=cancels, errors=result.errors + errors)


def _planned(mapping: Mapping, envelope: dict[str, Any], now: float | None) -> Result:
    if mapping.phone is None:  # a mapping that only cancels
        return Result(key=_event_key(mapping, [envelope]))
    if mapping.each is None:
        result = _evaluate_scope(mapping, envelope, None, now)
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
    skips: list[str] = []
    for index, item in enumerate(items):
        one = _evaluate_scope(mapping, {**envelope, "item": item}, index, now)
        deliveries.extend(one.deliveries)
        fetches.extend(one.lookups)
        errors.extend(one.errors)
        skips.extend([one.skipped] if one.skipped else [])
    if deliveries or fetches:
        return Result(tuple(deliveries), tuple(errors), lookups=tuple(fetches))
    key = _event_key(mapping, [{**envelope, "item": item} for item in items])
    if not errors:
        why = ("filter: no item passed" if all(s == "filter" for s in skips)
               else f"every item was skipped ({skips[0]})")
        return Result(skipped=why, key=key)
    return Result(errors=tuple(errors), key=key)


def _cancels(mapping: Mapping, envelope: dict[str, Any]
             ) -> tuple[tuple[Cancellation, ...], tuple[FieldError, ...]]:
    """What the webhook's `cancel:` cancels: a Cancellation per key (none when `when` is
    false or the key is empty), or why the key cannot be one."""
    cancel = mapping.cancel
    assert cancel is not None
    try:
        if cancel.when is not None and not _truthy(cancel.when.search(envelope)):
            return (), ()
        value = cancel.key.search(envelope)
    except JMESPathError as exc:
        return (), (FieldError("cancel", _jmespath_message(exc)),)
    values = value if isinstance(value, list) else [value]
    if len(values) > MAX_CANCEL_KEYS:
        return (), (FieldError("cancel.key", f"{len(values)} keys; at most "
                               f"{MAX_CANCEL_KEYS} a webhook"),)
    keys: list[str] = []
    for one in values:
        if one is None or one == "":
            continue
        if isinstance(one, bool) or not isinstance(one, str | int | float):
            return (), (FieldError("cancel.key", f"{cancel.key.text} gave {_kind(one)}; "
                                   "expected text or a number (or a list of them)"),)
        keys.append(key_text(one))
    return tuple(Cancellation(k, cancel.mappings, cancel.keep)
                 for k in dict.fromkeys(keys)), ()


def key_text(value: str | int | float) -> str:
    """A schedule's or a cancellation's key as stored and compared: the text, or a number
    as JSON writes it; a digest when longer than MAX_KEY."""
    text = value if isinstance(value, str) else json.dumps(value)
    if len(text) <= MAX_KEY:
        return text
    return "sha256:" + hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()


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
                     answer: Any, now: float | None = None) -> Result:
    """The rest of a mapping with `lookup:`, once the worker fetched `answer` for `item` (the
    index under `each`, or None): the delivery (or skip, or errors) of that one item, with
    the answer seen under the lookup's name. `now`: when the webhook arrived (a delay counts
    from then)."""
    if now is None and (mapping.schedule or mapping.quiet_hours):
        now = time.time()
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
    return _evaluate_scope(mapping, scope, item, now, fetched=True)


def _evaluate_scope(mapping: Mapping, scope: dict[str, Any], item: int | None,
                    now: float | None, fetched: bool = False) -> Result:
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

    assert mapping.phone is not None  # evaluate() plans no delivery for a cancel-only one
    phone = _phone(mapping.phone, scope, fail)
    attributes = _attributes(mapping.attributes, scope, fail)
    rule = _flow(mapping, {**scope, "phone": phone, "attributes": attributes}, fail)
    dedup_key = _dedup_key(mapping.id, scope, fail)
    if errors or phone is None or rule is None:
        return Result(errors=tuple(errors))
    when: timing.When | str | None = None
    cancel_key = None
    if mapping.schedule is not None or mapping.quiet_hours is not None:
        assert now is not None  # evaluate() reads the clock when it was given no time
        when = _when(mapping, scope, phone, now, fail)
        cancel_key = _cancel_key(mapping, scope, fail)
        if errors or when is None:
            return Result(errors=tuple(errors))
    if isinstance(when, str):
        return Result(skipped=f"schedule: {when}")
    if when is not None and when.why == timing.AT_ONCE:
        when = None  # quiet hours that did not apply: as if the mapping had none
    flow_key = mapping.flows[rule.number - 1].flow_key
    delivery = Delivery(flow_key, mapping.channel, phone, attributes, dedup_key, item, rule,
                        send_at=None if when is None else when.send_at,
                        why=None if when is None else when.why, cancel_key=cancel_key)
    return Result(deliveries=(delivery,))


def _when(mapping: Mapping, scope: dict[str, Any], phone: str, now: float,
          fail: Any) -> timing.When | str | None:
    """When the delivery is sent (or, as text, why it is skipped): its schedule, then its
    quiet hours. None, with the failure added, when the payload gives no usable time."""
    spec = mapping.schedule
    try:
        value = spec.at.search(scope) if spec is not None and spec.at is not None else None
    except JMESPathError as exc:
        fail("schedule.at", _jmespath_message(exc))
        return None
    try:
        when = timing.planned(spec, value, now)
    except timing.ScheduleError as exc:
        fail("schedule.at", str(exc))
        return None
    if isinstance(when, str) or mapping.quiet_hours is None:
        return when
    later = timing.quiet_end(mapping.quiet_hours, when.send_at, phone)
    return when if later is None else timing.When(later[0], f"{when.why}; {later[1]}")


def _cancel_key(mapping: Mapping, scope: dict[str, Any], fail: Any) -> str | None:
    """The delivery's `schedule.key` (None without one, or when it gives nothing)."""
    expr = mapping.schedule.key if mapping.schedule is not None else None
    if expr is None:
        return None
    try:
        value = expr.search(scope)
    except JMESPathError as exc:
        fail("schedule.key", _jmespath_message(exc))
        return None
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        fail("schedule.key", f"{expr.text} gave {_kind(value)}; expected text or a number")
        return None
    return key_text(value)


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

