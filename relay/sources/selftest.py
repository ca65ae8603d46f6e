"""A mapping's `tests:`: example webhooks and what they must map to (run by `relay check`
and by tests/unit/test_example_mappings.py).

It lives with the endpoint rather than in the pure mapping package because a test reads its
example body from a file next to the mapping and parses it as the endpoint's preset does.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from relay.errors import BodyError, field_errors
from relay.mapping import Delivery, Result
from relay.mapping.evaluate import key_text
from relay.mapping.model import Cancellation, iso_utc
from relay.mapping.schedule import ScheduleError, instant, span, zone
from relay.model import Mapped
from relay.sources.body import content_type_for
from relay.sources.endpoint import Endpoint, evaluate_answered, evaluate_raw

_FILE_NAME = re.compile(r"[\w./-]+\.(json|xml|txt|form)")
_DELIVERY_KEYS = ("flow_key", "channel", "phone", "id", "attributes", "send_at")
MAX_EXAMPLE = 16 * 1024 * 1024  # bytes of an example body file: larger is no webhook


@dataclass
class Outcome:
    mapping: str
    name: str
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures


def run_tests(endpoint: Endpoint) -> list[Outcome]:
    return [run_test(endpoint, case) for case in endpoint.mapping.tests]


def run_test(endpoint: Endpoint, case: dict[str, Any]) -> Outcome:
    outcome = Outcome(endpoint.name, case["name"])
    try:
        # One time for the whole case, read here when the test gives none, so that "at once"
        # and a delay are measured from the same instant the mapping saw.
        now = arrival(case["now"]) if case.get("now") is not None else time.time()
    except ScheduleError as exc:
        outcome.failures.append(f"now: {exc}")
        return outcome
    try:
        raw, headers = case_request(endpoint, case)
        query = case.get("query", {})
        if "lookup" in case:
            answer = case_answer(endpoint, case)
            if answer is None:
                outcome.failures.append(f"lookup: {case['lookup']} is not JSON")
                return outcome
            result = evaluate_answered(endpoint, raw, headers, query, answer, now)
        else:
            result = evaluate_raw(endpoint, raw, headers, query, now)
    except (OSError, BodyError) as exc:
        outcome.failures.append(f"body: {exc}")
        return outcome
    if result.lookups:
        outcome.failures.append("this mapping fetches (lookup:) before it maps: give the test "
                                "`lookup:`, the answer the fetch would get (an object, or a "
                                "file such as examples/lead.json)")
        return outcome
    outcome.failures = compare(case["expect"], result, now)
    return outcome


def arrival(value: Any) -> float:
    """When a webhook is taken to arrive (a test's `now:`, `relay preview --now`, the
    playground's): ISO 8601 (UTC unless it names a zone) or epoch seconds (or milliseconds),
    as UNIX seconds. YAML reads an unquoted 2026-12-03T10:00:00Z as a timestamp: that is
    taken too. Raises ScheduleError."""
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    if isinstance(value, date):
        raise ScheduleError(f"{value.isoformat()} is a day, not a time: give the time too, "
                            f"e.g. {value.isoformat()}T10:00:00Z")
    return instant(value, zone("UTC"))


def case_answer(endpoint: Endpoint, case: dict[str, Any]) -> Any:
    """A test's `lookup:` answer: inline, or a JSON file beside the mapping (None when that
    file is not JSON)."""
    answer = case["lookup"]
    if isinstance(answer, str) and _FILE_NAME.fullmatch(answer):
        raw, _ = case_request(endpoint, {"body": answer})
        try:
            return json.loads(raw)
        except ValueError:
            return None
    return answer


def case_request(endpoint: Endpoint, case: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    """The raw body and headers a test describes; a body naming a file reads that file."""
    headers = {k.lower(): v for k, v in case.get("headers", {}).items()}
    body = case["body"]
    if isinstance(body, str) and _FILE_NAME.fullmatch(body):
        folder = Path(endpoint.file).parent.resolve()
        file = (folder / body).resolve()
        # Examples live beside the mapping: a test (written in the console's playground, say)
        # must not read other files of the machine and show them in its outcome.
        if not file.is_relative_to(folder):
            raise FileNotFoundError(f"{body} is outside the mapping's folder: keep example "
                                    "bodies in it (e.g. examples/)")
        if not file.is_file():
            raise FileNotFoundError(f"no file {body} next to {endpoint.file}")
        headers.setdefault("content-type", content_type_for(body) or "application/json")
        with file.open("rb") as f:
            raw = f.read(MAX_EXAMPLE + 1)
        if len(raw) > MAX_EXAMPLE:
            raise FileNotFoundError(f"{body} is larger than {MAX_EXAMPLE} bytes")
        return raw, headers
    if isinstance(body, str):
        return body.encode(), headers
    headers.setdefault("content-type", "application/json")
    return json.dumps(body).encode(), headers


def compare(expect: dict[str, Any], result: Result, now: float | None = None) -> list[str]:
    """Readable differences between what a test expects and what the mapping gave, for a
    webhook that arrived at `now` (what "at once" means for `send_at`; default the clock)."""
    now = time.time() if now is None else now
    errors = [str(e) for e in result.errors]
    if expect.get("skipped"):
        if result.status is Mapped.SKIPPED:
            return []
        return [f"expected the webhook to be skipped, got {_summary(result)}"]
    if "errors" in expect:
        missing = [want for want in expect["errors"] if not any(want in e for e in errors)]
        return [f"expected an error about {want!r}, got {_summary(result)}" for want in missing]
    if errors:
        return ["unexpected error: " + e for e in errors]
    wanted = expect.get("deliveries")
    if wanted is None and "cancels" in expect and not any(k in expect for k in _DELIVERY_KEYS):
        wanted = []  # a test of what a webhook cancels, and nothing else: no delivery
    if result.status is Mapped.SKIPPED:
        what = "a delivery" if wanted is None or wanted else "cancellations"
        return [f"expected {what}, but the webhook was skipped ({result.skipped})"]
    if wanted is None:
        wanted = [{k: v for k, v in expect.items() if k in _DELIVERY_KEYS}]
    failures = _compare_cancels(expect["cancels"], result) if "cancels" in expect else []
    if len(wanted) != len(result.deliveries):
        failures.append(f"expected {len(wanted)} deliveries, got {len(result.deliveries)}"
                        + (f" (no delivery: {result.skipped})" if result.skipped
                           and not result.deliveries else ""))
    for index, (want, got) in enumerate(zip(wanted, result.deliveries, strict=False)):
        prefix = f"deliveries[{index}]." if len(wanted) > 1 else ""
        failures += [prefix + line for line in _compare_delivery(want, got, now)]
    return failures


def _compare_delivery(want: dict[str, Any], got: Delivery, now: float) -> list[str]:
    actual = got.to_dict()
    lines = []
    for key in ("flow_key", "channel", "phone", "id"):
        if key in want and want[key] != actual[key]:
            lines.append(f"{key}: expected {want[key]!r}, got {actual[key]!r}")
    for name, value in want.get("attributes", {}).items():
        if name not in got.attributes:
            lines.append(f"attributes.{name}: expected {value!r}, got nothing (left out)")
        elif got.attributes[name] != value:
            lines.append(f"attributes.{name}: expected {value!r}, got {got.attributes[name]!r}")
    if "send_at" in want:
        lines += _compare_send_at(want["send_at"], got, now)
    return lines


def _compare_send_at(want: Any, got: Delivery, now: float) -> list[str]:
    """`send_at`: an instant (written in any zone) or null, at once: the time the webhook
    arrived. Equal to the second, as both are shown."""
    if want is None:
        expected = now
    else:
        try:
            expected = arrival(want)
        except ScheduleError as exc:
            return [f"send_at: {exc}"]
    sent = now if got.send_at is None else got.send_at
    if abs(sent - expected) < 1:
        return []
    shown = f"at once ({iso_utc(now)})" if want is None else iso_utc(expected)
    return [f"send_at: expected {shown}, got {when_text(got, now, dated=True)}"]


def when_text(delivery: Delivery, now: float, dated: bool = False) -> str:
    """When a delivery of a webhook that arrived at `now` is sent, and why, as previews and
    test failures say it: "at once", or "2026-11-28T16:00:00Z, in 2d3h (delay ...)".
    `dated`: "at once" says the time too."""
    why = delivery.why  # None for one sent at once (evaluate() leaves a time it did not move)
    if delivery.send_at is None or delivery.send_at - now < 1:
        return "at once" + (f" ({iso_utc(now)})" if dated else "") + (
            f": {why}" if why else "")
    return (f"{iso_utc(delivery.send_at)}, in {span(delivery.send_at - now)}"
            + (f" ({why})" if why else ""))


def cancel_text(cancel: Cancellation, mapping: str) -> str:
    """What a webhook of `mapping` cancels, as previews say it."""
    whose = ", ".join(cancel.mappings) if cancel.mappings else f"{mapping} (this mapping)"
    return (f"cancels key {cancel.key!r} of {whose} (pending deliveries now, and those "
            f"arriving within {span(cancel.keep)})")


def _compare_cancels(want: list[Any], result: Result) -> list[str]:
    """`cancels`: the keys the webhook cancels, in any order (as stored: a key longer than
    the store keeps is compared as its digest)."""
    expected = [key_text(k) if isinstance(k, str | int | float) else str(k) for k in want]
    got = [c.key for c in result.cancels]
    if set(expected) == set(got):
        return []
    return [f"cancels: expected {expected!r}, got {got!r}"
            + (" (cancel.when was false, or the key was empty)" if not got else "")]


def _summary(result: Result) -> str:
    if result.errors:
        return "errors: " + field_errors(result.errors)
    if result.status is Mapped.SKIPPED:
        return f"skipped ({result.skipped})"
    cancels = f"cancels {[c.key for c in result.cancels]!r}" if result.cancels else ""
    if not result.deliveries:
        return cancels
    return f"{len(result.deliveries)} delivery(ies) to " + ", ".join(
        d.flow_key for d in result.deliveries) + (f", and {cancels}" if cancels else "")

