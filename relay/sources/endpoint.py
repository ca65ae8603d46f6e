"""An endpoint: what serves `POST /hooks/<name>`, loaded from `mappings/<name>.yaml`.

It holds the mapping (what the file says about turning a body into deliveries, pure) and the
preset with what the file says about the sender: its secrets and verify options, compiled
once at load. Loading reads the file and runs the mapping's checks and the preset's in one
pass, so that every problem of a file is reported at once, by line.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping as AnyMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from relay.errors import FieldError, MappingLoadError, Problem, SignatureError
from relay.mapping import Mapping, Result, evaluate_fetched
from relay.mapping.load import build, interpolate, parse
from relay.mapping.yamlfile import Report
from relay.sources.base import Preset
from relay.sources.generic import Verifier
from relay.sources.presets import PRESETS

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def valid_name(name: str) -> bool:
    """Whether `name` can be an endpoint's name (and so a file name in the mappings folder:
    no separator, never `.` or `..`)."""
    return len(name) <= 200 and bool(_NAME.fullmatch(name))


@dataclass(frozen=True)
class Endpoint:
    name: str
    file: str
    mapping: Mapping
    preset: Preset
    secrets: tuple[str, ...] = field(default=(), repr=False)
    # None: the preset's own way; False: off (`verify: false`); generic: how, compiled.
    verify: Verifier | Literal[False] | None = None
    organizations: tuple[str, ...] = ()  # salesforce: OrganizationIds allowed to post
    legacy_signatures: bool = False  # hubspot: also accept v1/v2 signatures
    # Header and query parameter names (lower-cased) that carry a credential for this
    # endpoint, whatever they are called (a generic token's header): never stored or shown.
    credentials: frozenset[str] = frozenset()
    locked: str | None = None  # why the endpoint cannot serve yet (an unset secret)
    # meta-lead-ads: the Verify Token Meta's GET handshake must present (preset.handshake)
    verify_token: str | None = field(default=None, repr=False)
    waiting_on: tuple[str, ...] = ()  # the unset variables (secret:, verify_token:) locking it

    def evaluate_raw(self, raw: bytes, headers: dict[str, str], query: dict[str, Any],
                     now: float | None = None) -> Result:
        """The module's `evaluate_raw` for this endpoint (what replays call)."""
        return evaluate_raw(self, raw, headers, query, now)


def load_endpoint(file: str | Path, env: AnyMapping[str, str] | None = None) -> Endpoint:
    """Load one mapping file (${NAME} from `env`, the process environment by default); the
    endpoint name is the file name without its suffix. Raises MappingLoadError listing every
    problem of the file."""
    file = Path(file)
    env = os.environ if env is None else env
    where = str(file)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise MappingLoadError([Problem(where, None, "", f"cannot read the file: {exc}")]) from None
    return endpoint_from_text(text, file, env)


def endpoint_from_text(text: str, file: Path, env: AnyMapping[str, str]) -> Endpoint:
    """An endpoint from a mapping's text as if it were `file` (the console's playground
    tries texts that are not saved); MappingLoadError lists every problem, by line."""
    where = str(file)

    def check_name(report: Report) -> None:
        if not _NAME.match(file.stem):
            report.add((), f"the file name {file.stem!r} cannot be an endpoint name: use "
                       "letters, digits, '-', '_' and '.'")

    document = parse(text, where, env, check=check_name)
    data, report = document.data, document.report
    source = data.get("source", "generic")
    preset = PRESETS.get(source)
    if preset is None:
        report.add(("source",), f"unknown source {source!r}; expected one of "
                   + ", ".join(sorted(PRESETS)))
        preset = PRESETS["generic"]
    lookup = interpolate(preset.lookup, document.env, report, ("lookup",))
    mapping = build(document, id=preset.id, each=preset.each, lookup=lookup,
                    keys=preset.envelope_keys + (("digest",) if preset.body_digest else ()))
    preset.validate(report, data)
    secrets, locked = _secrets(report, data)
    report.raise_problems()
    verifier = preset.verifier(data)
    organizations = data.get("organization_id", ())
    return Endpoint(
        name=file.stem,
        file=where,
        mapping=mapping,
        preset=preset,
        secrets=secrets,
        verify=False if data.get("verify") is False else verifier,
        organizations=(organizations,) if isinstance(organizations, str) else tuple(organizations),
        legacy_signatures=data.get("legacy_signatures", False),
        credentials=verifier.credentials if verifier else frozenset(),
        locked=locked,
        waiting_on=tuple(report.unset_secrets) if locked else (),
        verify_token=data.get("verify_token") or None,
    )


def _secrets(report: Report, data: dict[str, Any]) -> tuple[tuple[str, ...], str | None]:
    """The secrets given (empty ones left out), and why the endpoint is locked: a secret
    whose ${NAME} is unset locks it rather than failing the file, so that the others start."""
    given = data.get("secret", ())
    secrets = tuple(s for s in ((given,) if isinstance(given, str) else given) if s)
    if report.unset_secrets:  # of secret: or verify_token:
        unset = report.unset_secrets
        return secrets, f"{', '.join(unset)} {'is' if len(unset) == 1 else 'are'} not set"
    if "secret" in data and not secrets:
        report.add(("secret",), "the secret is empty")
    return secrets, None


def evaluate_raw(endpoint: Endpoint, raw: bytes, headers: dict[str, str],
                 query: dict[str, Any], now: float | None = None) -> Result:
    """Parse a request as the endpoint's preset does, apply the preset's checks of the parsed
    body (Salesforce's organization), then `evaluate()` it as arrived at `now` (None: the
    clock's time): what a preview, a replay or a mapping's test would get. A body the preset
    refuses is a failed result, saying why.

    Raises BodyError when the body cannot be parsed.
    """
    envelope = endpoint.preset.envelope(raw, headers, query)
    try:
        endpoint.preset.admit(endpoint, envelope)
    except SignatureError as exc:
        return Result(errors=(FieldError("source", f"the relay refuses it: {exc.reason}"),))
    return endpoint.preset.evaluate(endpoint.mapping, envelope, raw, now)


def evaluate_answered(endpoint: Endpoint, raw: bytes, headers: dict[str, str],
                      query: dict[str, Any], answer: Any, now: float | None = None) -> Result:
    """`evaluate_raw`, then, for a mapping with `lookup:`, each planned fetch taken as
    answered `answer` and mapped as the worker would: what a mapping's test, which makes no
    call, checks. Raises BodyError when the body cannot be parsed."""
    planned = evaluate_raw(endpoint, raw, headers, query, now)
    if not planned.lookups:
        return planned
    envelope = endpoint.preset.envelope(raw, headers, query)
    value = endpoint.preset.looked_up(answer)
    mapped = [evaluate_fetched(endpoint.mapping, envelope, f.item, value, now)
              for f in planned.lookups]
    deliveries = tuple(d for r in mapped for d in r.deliveries)
    errors = planned.errors + tuple(e for r in mapped for e in r.errors)
    skipped = None if deliveries or errors else next(
        (r.skipped for r in mapped if r.skipped), "filter")
    return Result(deliveries, errors, skipped, cancels=planned.cancels)
