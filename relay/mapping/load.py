"""Mapping text to a `Mapping`: YAML -> JSON Schema -> ${ENV} -> compiled expressions.

Pure: the text and the environment are given. Every problem is collected in a `Report` and
reported at once, each with the file, the line and the key, so that an integrator fixes a
file in one pass. The keys about the sender (`source`, `secret`, `verify`, ...) are checked by
relay/sources/endpoint.py on the same `Report`, which is why loading comes in two steps:
`parse` (YAML, schema, ${ENV}) and `build` (compilation), with the preset's defaults for `id`
and `each` in between; `load` does both for a mapping read on its own.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable, Iterator
from collections.abc import Mapping as AnyMapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import jmespath
from jmespath.exceptions import IncompleteExpressionError, JMESPathError, LexerError
from jsonschema import Draft202012Validator

from relay.errors import MappingLoadError
from relay.mapping import schedule
from relay.mapping.functions import FUNCTION_TABLE
from relay.mapping.lint import lint
from relay.mapping.model import (
    Attribute,
    Cancel,
    Engati,
    Expr,
    Flow,
    Lookup,
    Mapping,
    Phone,
    QuietHours,
    Schedule,
)
from relay.mapping.yamlfile import Path_, Report, parse_yaml, report_schema_error

DEFAULT_BASE_URL = "https://api.engati.ai"
RESERVED_ATTRIBUTES = ("user.channel", "user.phone_no")
# The keys whose ${NAME} holds a credential: unset, it locks the endpoint (503 until it is
# set) rather than failing the file; never shown, and the only ones the playground may add.
SECRET_KEYS = (("secret",), ("verify_token",), ("lookup", "token"))
ENV_REFERENCE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@cache
def schema() -> dict[str, Any]:
    """The JSON Schema of a mapping file, as shipped in the package (package data, read once
    like a module)."""
    text = resources.files("relay.mapping").joinpath("schema.json").read_text(encoding="utf-8")
    result: dict[str, Any] = json.loads(text)
    return result


@dataclass(frozen=True)
class Document:
    """A mapping file parsed: its keys with ${NAME} substituted, and the report of its
    problems so far, which `build` and the sender's checks add to."""

    data: dict[str, Any]
    report: Report
    env: AnyMapping[str, str]  # what ${NAME} and the ENGATI_* defaults were read from


def parse(text: str, where: str, env: AnyMapping[str, str],
          check: Callable[[Report], None] | None = None) -> Document:
    """YAML, then the JSON Schema, then ${NAME} from `env`. `where` names the file in
    messages; `check` adds the caller's own problems (the file's name) to the first ones.
    Raises MappingLoadError when the YAML or the schema fails: nothing more can be checked
    then."""
    data, lines, problems = parse_yaml(where, text)
    report = Report(where, lines, problems)
    if check is not None:
        check(report)
    if data is not None:
        for error in Draft202012Validator(schema()).iter_errors(data):
            report_schema_error(report, error)
    if report.problems or data is None:
        raise MappingLoadError(report.problems)
    return Document(interpolate(data, env, report), report, env)


def load(text: str, where: str, env: AnyMapping[str, str], *, id: str | None = None,
         each: str | None = None) -> Mapping:
    """`parse` and `build` in one: the mapping, or MappingLoadError with every problem, by
    line. `id` and `each` are the defaults for the keys the text leaves out."""
    document = parse(text, where, env)
    mapping = build(document, id=id, each=each)
    document.report.raise_problems()
    return mapping


# --- ${NAME} from the environment ----------------------------------------------------------------


def is_secret(path: Path_) -> bool:
    """Whether the value at `path` of a mapping file is one of SECRET_KEYS (or in one)."""
    return any(path[:len(key)] == key for key in SECRET_KEYS)


def interpolate(data: Any, env: AnyMapping[str, str], report: Report, path: Path_ = ()) -> Any:
    """`data` (found at `path` of a mapping file) with every ${NAME} substituted from `env`;
    an unset one is a problem of the file, or locks the endpoint under SECRET_KEYS."""
    if isinstance(data, dict):
        # Test bodies are examples of what senders post, not configuration.
        return {k: v if path == () and k == "tests" else interpolate(v, env, report, (*path, k))
                for k, v in data.items()}
    if isinstance(data, list):
        return [interpolate(v, env, report, (*path, i)) for i, v in enumerate(data)]
    if not isinstance(data, str) or "$" not in data:
        return data

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, default = match.group(1), match.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        if is_secret(path):
            report.unset_secrets.append(name)
        else:
            report.add(path, f"environment variable {name} is not set "
                       f"(set it, or write ${{{name}:-default}})")
        return ""

    return ENV_REFERENCE.sub(substitute, data)


# --- semantic checks and compilation ----------------------------------------------------------


def build(document: Document, *, id: str | None = None, each: str | None = None,
          lookup: dict[str, Any] | None = None, keys: tuple[str, ...] = ()) -> Mapping:
    """Check and compile what the mapping says, adding every problem to the document's
    report. `id`, `each` and `lookup` are the defaults (the preset's) for what the file
    leaves out (`lookup`'s keys one by one, once the file has a `lookup:`); `keys`, what the
    preset's envelopes hold besides body, headers and query."""
    data, report = document.data, document.report
    compiled: list[tuple[Path_, Expr]] = []  # the file's own expressions, for lint()

    def expr(path: Path_, text: str | None) -> Expr | None:
        found = None if text is None else _compile(report, path, text)
        if found is not None and path[0] in data:
            compiled.append((path, found))
        return found

    fetch = (_lookup(report, {**(lookup or {}), **data["lookup"]}, expr)
             if "lookup" in data else None)
    engati = engati_settings(data.get("engati", {}), document.env)
    if engati.rate_limit is not None and not engati.rate_limit > 0:
        report.add(("engati", "rate_limit"), "expected a number of calls a second above 0")
    channel = data.get("channel", "whatsapp")
    if channel == "rcs" and engati.api == "v1":
        report.add(("channel",), "rcs needs engati.api v2 (v1 triggers WhatsApp flows only)")

    phone = _phone(report, data, expr)

    attributes = [_attribute(report, name, spec, expr)
                  for name, spec in data.get("attributes", {}).items()]

    flows = []
    for index, entry in enumerate(data.get("flows", ())):
        when = expr(("flows", index, "when"), entry.get("when"))
        if index and "when" not in data["flows"][index - 1]:
            report.add(("flows", index), "unreachable: the entry before it has no `when`, so it "
                       "always matches; put the fallback last")
        flows.append(Flow(entry["flow_key"], when))

    return Mapping(
        engati=engati,
        phone=phone,
        flows=tuple(flows),
        attributes=tuple(attributes),
        channel=channel,
        filter=expr(("filter",), data.get("filter")),
        each=expr(("each",), data.get("each", each)),
        id=expr(("id",), data.get("id", id)),
        lookup=fetch,
        schedule=_schedule(report, data["schedule"], expr) if "schedule" in data else None,
        quiet_hours=_quiet_hours(report, data["quiet_hours"]) if "quiet_hours" in data else None,
        cancel=_cancel(report, data["cancel"], expr) if "cancel" in data else None,
        tests=tuple(data.get("tests", ())),
        warnings=lint(compiled, [a.name for a in attributes], each=each is not None or (
            "each" in data), report=report, lookup=fetch.name if fetch else None, added=keys),
    )


def engati_settings(spec: dict[str, Any], env: AnyMapping[str, str]) -> Engati:
    """A mapping's `engati:` keys, each falling back to ENGATI_<KEY> in `env`."""
    def setting(key: str) -> str | None:
        value = spec.get(key)
        value = env.get(f"ENGATI_{key.upper()}") if value in (None, "") else value
        return None if value in (None, "") else str(value)

    rate = setting("rate_limit")
    try:
        rate_limit = None if rate is None else float(rate)
    except ValueError:
        rate_limit = 0.0  # reported by the caller as not above 0
    return Engati(
        customer_id=setting("customer_id"),
        bot_key=setting("bot_key"),
        api_key=setting("api_key"),
        api=spec.get("api", "v2"),
        base_url=(setting("base_url") or DEFAULT_BASE_URL).rstrip("/"),
        rate_limit=rate_limit,
    )


def _phone(report: Report, data: dict[str, Any], expr: Any) -> Phone | None:
    """`phone:` compiled; None in a mapping that only cancels (no phone, no flows)."""
    if "cancel" in data and "phone" not in data and "flows" not in data:
        # It plans no delivery: keys about deliveries would be ignored, which is more likely
        # a phone and flows forgotten than meant.
        for key in ("attributes", "schedule", "quiet_hours", "lookup"):
            if key in data:
                report.add((key,), f"a mapping without phone and flows only cancels: {key} "
                           "applies to deliveries (add phone and flows, or leave it out)")
        return None
    for key in ("phone", "flows"):
        if key not in data:
            report.add((), f"{key} is required (only a mapping with cancel: may leave out "
                       "both phone and flows)")
    if "phone" not in data:
        return None
    phone_spec = data["phone"] if isinstance(data["phone"], dict) else {"path": data["phone"]}
    phone_path: Path_ = ("phone", "path") if isinstance(data["phone"], dict) else ("phone",)
    region = phone_spec.get("region", None)
    # A path that does not compile is None with a problem reported: the mapping is not used.
    return Phone(expr(phone_path, phone_spec["path"]),
                 region.upper() if region else region, phone_spec.get("format", "digits"))


MAX_KEEP = 30 * 86400.0  # seconds a cancellation may wait for its delivery
MAX_AHEAD = 365 * 86400.0  # seconds a delivery may be scheduled ahead (pending rows stay)


def _duration(report: Report, path: Path_, value: Any, default: float) -> float:
    if value is None:
        return default
    try:
        return schedule.duration(value)
    except schedule.ScheduleError as exc:
        report.add(path, str(exc))
        return default


def _zone_name(report: Report, path: Path_, name: str | None) -> None:
    if name is not None and name != "recipient":
        try:
            schedule.zone(name)
        except schedule.ScheduleError as exc:
            report.add(path, str(exc))


def _schedule(report: Report, spec: dict[str, Any], expr: Any) -> Schedule:
    """`schedule:` compiled: a delay, or a time from the payload with an offset."""
    path: Path_ = ("schedule",)
    if "delay" in spec and "at" in spec:
        report.add(path, "give either `delay` (after the webhook arrives) or `at` (a time "
                   "from the payload, with an optional `offset`), not both")
    if "at" not in spec:
        for key in ("offset", "if_past", "timezone"):
            if key in spec:
                report.add((*path, key), f"`{key}` only applies to `at`")
    delay = _duration(report, (*path, "delay"), spec.get("delay"), 0.0)
    if delay < 0:
        report.add((*path, "delay"), "a delay cannot be negative")
    elif delay > MAX_AHEAD:
        report.add((*path, "delay"), "at most 365d: a delivery waits no longer than a year")
    horizon = _duration(report, (*path, "horizon"), spec.get("horizon"), 90 * 86400.0)
    if not 0 < horizon <= MAX_AHEAD:
        report.add((*path, "horizon"), "expected a duration above 0 and at most 365d, e.g. 90d")
    _zone_name(report, (*path, "timezone"), spec.get("timezone"))
    if spec.get("timezone") == "recipient":
        report.add((*path, "timezone"), "`at` times are read in a named zone (recipient is "
                   "for quiet_hours)")
    return Schedule(delay=delay, at=expr((*path, "at"), spec.get("at")),
                    offset=_duration(report, (*path, "offset"), spec.get("offset"), 0.0),
                    if_past=spec.get("if_past", "send"), timezone=spec.get("timezone", "UTC"),
                    horizon=horizon, key=expr((*path, "key"), spec.get("key")))


def _quiet_hours(report: Report, spec: dict[str, Any]) -> QuietHours | None:
    """`quiet_hours:` checked: its times, and zones that exist."""
    path: Path_ = ("quiet_hours",)
    start, end = schedule.clock(spec["from"]), schedule.clock(spec["to"])  # the schema's form
    if start == end:
        report.add(path, "`from` and `to` are the same time: the window would be empty (or "
                   "the whole day)")
    _zone_name(report, (*path, "timezone"), spec.get("timezone"))
    _zone_name(report, (*path, "fallback"), spec.get("fallback"))
    if "fallback" in spec and spec.get("timezone", "recipient") != "recipient":
        report.add((*path, "fallback"), "`fallback` only applies to timezone: recipient")
    return QuietHours(start, end, spec.get("timezone", "recipient"), spec.get("fallback"))


def _cancel(report: Report, spec: dict[str, Any], expr: Any) -> Cancel | None:
    """`cancel:` compiled."""
    path: Path_ = ("cancel",)
    keep = _duration(report, (*path, "keep"), spec.get("keep"), 86400.0)
    if not 0 <= keep <= MAX_KEEP:
        report.add((*path, "keep"), "expected a duration from 0 to 30d")
    key = expr((*path, "key"), spec["key"])
    if key is None:
        return None
    return Cancel(key, tuple(spec.get("mappings", ())), expr((*path, "when"), spec.get("when")),
                  keep)


def _attribute(report: Report, name: str, spec: Any, expr: Any) -> Attribute:
    path: Path_ = ("attributes", name)
    if name in RESERVED_ATTRIBUTES:
        report.add(path, f"{name} is set by the relay from `channel` and `phone`; "
                   "rename the attribute")
    if isinstance(spec, str):
        return Attribute(name, path=expr(path, spec))
    if ("path" in spec) == ("value" in spec):
        report.add(path, "give either `path` (an expression) or `value` (a constant), not "
                   + ("both" if "path" in spec else "neither"))
    if "value" in spec and ("required" in spec or "default" in spec):
        report.add(path, "`required` and `default` only apply to `path`")
    return Attribute(
        name,
        path=expr((*path, "path"), spec["path"]) if "path" in spec else None,
        value=spec.get("value"),
        required=spec.get("required", False),
        default=spec.get("default"),
    )


_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
# Where a lookup's URL may take values from the webhook: after a literal scheme and host.
_LITERAL_HOST = re.compile(r"https?://[^/{}?#@]+/")


def _lookup(report: Report, spec: dict[str, Any], expr: Any) -> Lookup:
    """`lookup:` compiled: its URL template split into literal text and expressions."""
    text = spec.get("url", "")
    path: Path_ = ("lookup", "url")
    parts: list[str | Expr] = []
    if not text:
        report.add(("lookup",), "give the url to fetch, e.g. https://api.example.com/v1/"
                   "orders/{body.order_id}")
    elif not _LITERAL_HOST.match(text):
        report.add(path, "expected http(s)://host/... with the scheme and host written out "
                   "(a value from the webhook may only fill in the path or the query)")
    else:
        at = 0
        for match in _PLACEHOLDER.finditer(text):
            parts.append(text[at:match.start()])
            compiled = expr(path, match.group(1).strip() or "''")
            if compiled is not None:
                parts.append(compiled)
            at = match.end()
        parts.append(text[at:])
        if any("{" in p or "}" in p for p in parts if isinstance(p, str)):
            report.add(path, "a { without its } (or the reverse): an {expression} may not "
                       "hold braces itself")
    return Lookup(text, tuple(p for p in parts if p != ""), spec.get("as", "lookup"),
                  spec.get("token") or None, float(spec.get("timeout", 10.0)))


def _compile(report: Report, path: Path_, text: str) -> Expr | None:
    try:
        parsed = jmespath.compile(text)
    except JMESPathError as exc:
        report.add(path, _parse_error(text, exc))
        return None
    nodes = list(_nodes(parsed.parsed))
    for call in (n for n in nodes if n["type"] == "function_expression"):
        name, arity = call["value"], len(call["children"])
        spec = FUNCTION_TABLE.get(name)
        if spec is None:
            guess = difflib.get_close_matches(name, FUNCTION_TABLE, n=1)
            hint = f"; did you mean {guess[0]}()?" if guess else ""
            report.add(path, f"unknown function {name}(){hint}")
            continue
        signature = spec["signature"]
        variadic = bool(signature) and signature[-1].get("variadic", False)
        if arity < len(signature) or (arity > len(signature) and not variadic):
            expected = f"at least {len(signature)}" if variadic else str(len(signature))
            report.add(path, f"{name}() takes {expected} argument(s), got {arity}")
    # jmespath parses a step of 0; Python's slicing raised ValueError on each webhook whose
    # value was a list.
    if any(n["type"] == "slice" and n["children"][2] == 0 for n in nodes):
        report.add(path, "a slice's step may not be 0 (`[::0]`)")
    return Expr(text, parsed)


def _parse_error(text: str, exc: JMESPathError) -> str:
    column = getattr(exc, "lex_position", None)
    if isinstance(exc, IncompleteExpressionError):
        detail = "the expression is incomplete"
    elif isinstance(exc, LexerError):
        detail = exc.message
    else:
        detail = f"unexpected {getattr(exc, 'token_value', None)!r}"
    if column is None:
        return f"Parse error: {detail}"
    return f"Parse error at column {column}: {detail}\n    {text}\n    {' ' * column}^"


def _nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every node of a jmespath syntax tree (a slice's children are numbers, not nodes)."""
    yield node
    for child in node.get("children", ()):
        if isinstance(child, dict):
            yield from _nodes(child)
