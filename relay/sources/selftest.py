"""A mapping's `tests:`: example webhooks and what they must map to (run by `relay check`
and by tests/unit/test_example_mappings.py).

It lives with the endpoint rather than in the pure mapping package because a test reads its
example body from a file next to the mapping and parses it as the endpoint's preset does.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from relay.errors import BodyError, field_errors
from relay.mapping import Delivery, Result
from relay.model import Mapped
from relay.sources.body import content_type_for
from relay.sources.endpoint import Endpoint, evaluate_answered, evaluate_raw

_FILE_NAME = re.compile(r"[\w./-]+\.(json|xml|txt|form)")
_DELIVERY_KEYS = ("flow_key", "channel", "phone", "id", "attributes")
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
        raw, headers = case_request(endpoint, case)
        query = case.get("query", {})
        if "lookup" in case:
            answer = case_answer(endpoint, case)
            if answer is None:
                outcome.failures.append(f"lookup: {case['lookup']} is not JSON")
                return outcome
            result = evaluate_answered(endpoint, raw, headers, query, answer)
        else:
            result = evaluate_raw(endpoint, raw, headers, query)
    except (OSError, BodyError) as exc:
        outcome.failures.append(f"body: {exc}")
        return outcome
    if result.lookups:
        outcome.failures.append("this mapping fetches (lookup:) before it maps: give the test "
                                "`lookup:`, the answer the fetch would get (an object, or a "
                                "file such as examples/lead.json)")
        return outcome
    outcome.failures = compare(case["expect"], result)
    return outcome


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


def compare(expect: dict[str, Any], result: Result) -> list[str]:
    """Readable differences between what a test expects and what the mapping gave."""
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
    if result.status is Mapped.SKIPPED:
        return [f"expected a delivery, but the webhook was skipped ({result.skipped})"]
    wanted = expect.get("deliveries")
    if wanted is None:
        wanted = [{k: v for k, v in expect.items() if k in _DELIVERY_KEYS}]
    failures = []
    if len(wanted) != len(result.deliveries):
        failures.append(f"expected {len(wanted)} deliveries, got {len(result.deliveries)}")
    for index, (want, got) in enumerate(zip(wanted, result.deliveries, strict=False)):
        prefix = f"deliveries[{index}]." if len(wanted) > 1 else ""
        failures += [prefix + line for line in _compare_delivery(want, got)]
    return failures


def _compare_delivery(want: dict[str, Any], got: Delivery) -> list[str]:
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
    return lines


def _summary(result: Result) -> str:
    if result.errors:
        return "errors: " + field_errors(result.errors)
    if result.status is Mapped.SKIPPED:
        return f"skipped ({result.skipped})"
    return f"{len(result.deliveries)} delivery(ies) to " + ", ".join(
        d.flow_key for d in result.deliveries)

