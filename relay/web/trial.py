"""A mapping's text tried on a body, as the console's playground shows it: the problems of
the text by line, the Engati requests the body would trigger and which flow rule chose each
one, and the outcome of the mapping's own `tests:`. Nothing is sent, stored or saved.

`try_mapping` runs in a bounded child process (sandbox.py), so it takes and gives plain
JSON-able values.

What ${NAME} expands to here (the text comes from a browser, and what it shows goes back to
it): never the process's environment, but for the Engati settings the previews show already
(ENGATI_CUSTOMER_ID, ENGATI_BOT_KEY, ENGATI_BASE_URL, ENGATI_RATE_LIMIT). ENGATI_API_KEY is a
stand-in (the previews mask it), and every other ${NAME} stays written as `${NAME}`, listed in
`unexpanded`: a mapping that puts ${RELAY_ADMIN_TOKEN} or a sender's secret into an
attribute shows `${RELAY_ADMIN_TOKEN}`. Signatures are not checked, so secrets are not
needed.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from relay.delivery.request import build_request
from relay.errors import BodyError, MappingLoadError
from relay.mapping.model import iso_utc
from relay.sources.endpoint import Endpoint, endpoint_from_text, evaluate_raw
from relay.sources.selftest import cancel_text, run_tests, when_text

SHOWN = ("ENGATI_CUSTOMER_ID", "ENGATI_BOT_KEY", "ENGATI_BASE_URL", "ENGATI_RATE_LIMIT")
API_KEY_STAND_IN = "playground-api-key"  # never shown: build_request masks any api key
MAX_REQUESTS = 20  # planned requests listed (a batch may plan thousands): `planned` counts all


def playground_env(environ: Mapping[str, str]) -> dict[str, str]:
    """What the playground's ${NAME} may read of the process environment `environ`."""
    env = {name: environ[name] for name in SHOWN if environ.get(name)}
    if environ.get("ENGATI_API_KEY"):
        env["ENGATI_API_KEY"] = API_KEY_STAND_IN
    return env


class _Env(Mapping[str, str]):
    """`known`, and for any other name (but ENGATI_*, the defaults of `engati:` keys, which
    stay unset) the text `${NAME}` itself, noting the name."""

    def __init__(self, known: dict[str, str]):
        self.known = known
        self.unexpanded: list[str] = []

    def __getitem__(self, name: str) -> str:
        if name in self.known:
            return self.known[name]
        if name.startswith("ENGATI_"):
            raise KeyError(name)
        if name not in self.unexpanded:
            self.unexpanded.append(name)
        return "${" + name + "}"

    def __iter__(self) -> Iterator[str]:
        return iter(self.known)

    def __len__(self) -> int:
        return len(self.known)


def try_mapping(spec: dict[str, Any]) -> dict[str, Any]:
    """`spec`: name, yaml, body, headers, query, now (when the body arrives, UNIX seconds;
    None: the clock's time), folder (the mappings folder, where examples are read), env
    (playground_env's)."""
    env = _Env(spec["env"])
    answer: dict[str, Any] = {"problems": [], "locked": None, "preview": None, "tests": [],
                              "unexpanded": env.unexpanded}
    file = Path(spec["folder"]) / f"{spec['name']}.yaml"
    try:
        endpoint = endpoint_from_text(spec["yaml"], file, env)
    except MappingLoadError as exc:
        answer["problems"] = [{"line": p.line, "key": p.key, "message": p.message}
                              for p in sorted(exc.problems, key=lambda p: p.line or 0)]
        return answer
    answer["locked"] = endpoint.locked
    now = spec.get("now")
    answer["preview"] = preview(endpoint, spec["body"].encode(), spec["headers"], spec["query"],
                                time.time() if now is None else now)
    answer["tests"] = [{"name": o.name, "passed": o.passed, "failures": o.failures}
                       for o in run_tests(endpoint)]
    return answer


def preview(endpoint: Endpoint, raw: bytes, headers: dict[str, str],
            query: dict[str, Any], now: float) -> dict[str, Any]:
    """What a body arriving at `now` would trigger, with the rule that chose each flow, when
    each request would be sent and why, and what it cancels (api key masked)."""
    if not any(k.lower() == "content-type" for k in headers):
        headers = {**headers, "Content-Type": "application/json"}
    try:
        result = evaluate_raw(endpoint, raw, headers, query, now)
    except BodyError as exc:
        return {"status": "failed", "skipped": None, "planned": 0, "requests": [],
                "rules": [], "times": [], "cancels": [], "now": iso_utc(now),
                "errors": [{"field": "body", "message": str(exc)}]}
    shown = result.deliveries[:MAX_REQUESTS]
    return {"status": result.status, "skipped": result.skipped,
            "planned": len(result.deliveries),
            # A mapping with lookup: fetches first; the tests' `lookup:` answers show the rest.
            "lookups": [f.url for f in result.lookups[:MAX_REQUESTS]],
            "requests": [build_request(endpoint.mapping.engati, d, mask=True) for d in shown],
            "rules": [d.rule.explain() if d.rule else None for d in shown],
            "times": [{"send_at": None if d.send_at is None or d.send_at - now < 1
                       else iso_utc(d.send_at), "why": d.why, "text": when_text(d, now)}
                      for d in shown],
            "cancels": [{"key": c.key, "mappings": list(c.mappings or (endpoint.name,)),
                         "keep": c.keep, "text": cancel_text(c, endpoint.name)}
                        for c in result.cancels[:MAX_REQUESTS]],
            "now": iso_utc(now),
            "errors": [e.to_dict() for e in result.errors]}
