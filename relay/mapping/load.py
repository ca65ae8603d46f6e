"""Mapping files to `Mapping` objects: YAML -> JSON Schema -> ${ENV} -> compiled expressions.

Every problem of a file is collected and reported at once, each with the file, the line and
the key, so that an integrator fixes a file in one pass.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from collections.abc import Iterator
from collections.abc import Mapping as AnyMapping
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jmespath
from jmespath.exceptions import IncompleteExpressionError, JMESPathError, LexerError
from jsonschema import Draft202012Validator

from relay.errors import MappingLoadError, Problem
from relay.mapping import Attribute, Engati, Expr, Flow, Mapping, Phone
from relay.mapping.functions import FUNCTION_TABLE
from relay.mapping.yamlfile import Path_, Report, parse_yaml, report_schema_error
from relay.sources import PRESETS, Preset

DEFAULT_BASE_URL = "https://api.engati.ai"
RESERVED_ATTRIBUTES = ("user.channel", "user.phone_no")
SUFFIXES = (".yaml", ".yml")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_ENV = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")

@cache
def schema() -> dict[str, Any]:
    """The JSON Schema of a mapping file, as shipped in the package."""
    text = resources.files("relay.mapping").joinpath("schema.json").read_text(encoding="utf-8")
    return json.loads(text)


def load_folder(folder: str | Path, env: AnyMapping[str, str] | None = None) -> dict[str, Mapping]:
    """Load every mapping in `folder`; all problems of all files are raised together."""
    folder = Path(folder)
    if not folder.is_dir():
        raise MappingLoadError([Problem(str(folder), None, "", "no such folder")])
    mappings: dict[str, Mapping] = {}
    problems: list[Problem] = []
    for file in sorted(p for p in folder.iterdir() if p.suffix in SUFFIXES and p.is_file()):
        try:
            mapping = load_file(file, env)
        except MappingLoadError as exc:
            problems.extend(exc.problems)
            continue
        if mapping.name in mappings:
            first = mappings[mapping.name].file
            problems.append(
                Problem(str(file), None, "", f"endpoint /hooks/{mapping.name} is also {first}")
            )
            continue
        mappings[mapping.name] = mapping
    if problems:
        raise MappingLoadError(problems)
    return mappings


def load_file(file: str | Path, env: AnyMapping[str, str] | None = None) -> Mapping:
    """Load one mapping file; the endpoint name is the file name without its suffix."""
    file = Path(file)
    env = os.environ if env is None else env
    where = str(file)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise MappingLoadError([Problem(where, None, "", f"cannot read the file: {exc}")]) from None
    data, lines, problems = parse_yaml(where, text)
    report = Report(where, lines, problems)
    if not _NAME.match(file.stem):
        report.add((), f"the file name {file.stem!r} cannot be an endpoint name: use letters, "
                   "digits, '-', '_' and '.'")
    if data is not None:
        for error in Draft202012Validator(schema()).iter_errors(data):
            report_schema_error(report, error)
    if report.problems or data is None:
        raise MappingLoadError(report.problems)
    data = _interpolate(data, env, report)
    mapping = _build(file, data, env, report)
    if report.problems:
        raise MappingLoadError(sorted(report.problems, key=lambda p: p.line or 0))
    return mapping


# --- ${NAME} from the environment ----------------------------------------------------------------


def _interpolate(data: Any, env: AnyMapping[str, str], report: Report, path: Path_ = ()) -> Any:
    if isinstance(data, dict):
        # Test bodies are examples of what senders post, not configuration.
        return {k: v if path == () and k == "tests" else _interpolate(v, env, report, (*path, k))
                for k, v in data.items()}
    if isinstance(data, list):
        return [_interpolate(v, env, report, (*path, i)) for i, v in enumerate(data)]
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
        if path[:1] == ("secret",):
            report.unset_secrets.append(name)
        else:
            report.add(path, f"environment variable {name} is not set "
                       f"(set it, or write ${{{name}:-default}})")
        return ""

    return _ENV.sub(substitute, data)


# --- semantic checks and compilation ----------------------------------------------------------


def _build(file: Path, data: dict[str, Any], env: AnyMapping[str, str], report: Report) -> Mapping:
    def expr(path: Path_, text: str | None) -> Expr | None:
        return None if text is None else _compile(report, path, text)

    source_name = data.get("source", "generic")
    preset = PRESETS.get(source_name)
    if preset is None:
        report.add(("source",), f"unknown source {source_name!r}; expected one of "
                   + ", ".join(sorted(PRESETS)))
        preset = PRESETS["generic"]

    engati = engati_settings(data.get("engati", {}), env)
    if engati.rate_limit is not None and not engati.rate_limit > 0:
        report.add(("engati", "rate_limit"), "expected a number of calls a second above 0")
    channel = data.get("channel", "whatsapp")
    if channel == "rcs" and engati.api == "v1":
        report.add(("channel",), "rcs needs engati.api v2 (v1 triggers WhatsApp flows only)")

    phone_spec = data["phone"] if isinstance(data["phone"], dict) else {"path": data["phone"]}
    phone_path = ("phone", "path") if isinstance(data["phone"], dict) else ("phone",)
    phone = Phone(expr(phone_path, phone_spec["path"]), phone_spec.get("region", None),
                  phone_spec.get("format", "digits"))
    if phone.region:
        phone = Phone(phone.path, phone.region.upper(), phone.format)

    attributes = [_attribute(report, name, spec, expr)
                  for name, spec in data.get("attributes", {}).items()]

    flows = []
    for index, entry in enumerate(data["flows"]):
        when = expr(("flows", index, "when"), entry.get("when"))
        if index and "when" not in data["flows"][index - 1]:
            report.add(("flows", index), "unreachable: the entry before it has no `when`, so it "
                       "always matches; put the fallback last")
        flows.append(Flow(entry["flow_key"], when))

    secrets, organizations, locked = _verification(report, preset, data)
    return Mapping(
        name=file.stem,
        file=str(file),
        source=preset,
        engati=engati,
        phone=phone,
        flows=tuple(flows),
        attributes=tuple(attributes),
        channel=channel,
        filter=expr(("filter",), data.get("filter")),
        each=expr(("each",), data.get("each", preset.each)),
        id=expr(("id",), data.get("id", preset.id)),
        secrets=secrets,
        verify=data.get("verify"),
        organizations=organizations,
        legacy_signatures=data.get("legacy_signatures", False),
        credentials=_credentials(data.get("verify")),
        locked=locked,
        tests=tuple(data.get("tests", ())),
    )


def _verification(report: Report, preset: Preset, data: dict[str, Any]
                  ) -> tuple[tuple[str, ...], tuple[str, ...], str | None]:
    """Check how the sender is verified: (secrets, organization ids, why it is locked)."""
    verify = data.get("verify")
    given = data.get("secret", ())
    secrets = tuple(s for s in ((given,) if isinstance(given, str) else given) if s)
    organizations = data.get("organization_id", ())
    organizations = (organizations,) if isinstance(organizations, str) else tuple(organizations)
    if isinstance(verify, dict):
        if preset.name != "generic":
            report.add(("verify",), f"verify options are for source: generic; {preset.name} is "
                       "verified its own way (verify: false turns that off)")
        else:
            _check_generic(report, verify, "secret" in data)
    elif "secret" in data and preset.name == "generic" and verify is None:
        report.add(("secret",), "say how to check it, e.g. verify: {type: token, header: "
                   "X-Relay-Token} (docs/sources.md lists the ways)")
    if preset.signed and verify is not False and "secret" not in data:
        report.add(("source",), f"{preset.name} signs its webhooks: add secret: "
                   f"${{{preset.secret_env}}}, or verify: false to accept unsigned ones")
    if "legacy_signatures" in data and preset.name != "hubspot":
        report.add(("legacy_signatures",), "only source: hubspot has legacy signatures")
    if preset.name == "salesforce" and verify is not False and not organizations:
        report.add(("source",), "Salesforce signs nothing: add organization_id: <your org id> "
                   "(Setup > Company Information), or verify: false")
    locked = None
    if "secret" in data and not secrets:
        if report.unset_secrets:
            locked = f"{', '.join(report.unset_secrets)} is not set"
        else:
            report.add(("secret",), "the secret is empty")
    return secrets, organizations, locked


def _check_generic(report: Report, verify: dict[str, Any], has_secret: bool) -> None:
    kind = verify["type"]
    allowed = {"token": {"header", "query"}, "basic": set(),
               "hmac": {"header", "algorithm", "encoding", "prefix", "signed",
                        "timestamp_header", "tolerance"}}[kind]
    for key in sorted(set(verify) - allowed - {"type"}):
        report.add(("verify", key), f"does not apply to type {kind}")
    if kind == "token" and ("header" in verify) == ("query" in verify):
        report.add(("verify",), "a token is in a header or a query parameter: give one of them")
    if kind == "hmac" and "header" not in verify:
        report.add(("verify",), "hmac needs the header that carries the signature")
    if "{timestamp}" in verify.get("signed", "") and "timestamp_header" not in verify:
        report.add(("verify", "signed"), "{timestamp} needs timestamp_header")
    if "timestamp_header" in verify and "{timestamp}" not in verify.get("signed", "{body}"):
        # An unsigned timestamp protects nothing: a replay with a fresh header would pass.
        report.add(("verify", "signed"), "with timestamp_header, the signed content must "
                   "include {timestamp}, e.g. signed: \"{timestamp}.{body}\"")
    if not has_secret:
        report.add(("verify",), "needs secret: the token, user:password or key to check")


def _credentials(verify: Any) -> frozenset[str]:
    """The header or query parameter names a generic mapping verifies with: they are
    credentials whatever they are called, so they are never stored."""
    if not isinstance(verify, dict):
        return frozenset()
    return frozenset(verify[key].lower() for key in ("header", "query") if key in verify)


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


def _compile(report: Report, path: Path_, text: str) -> Expr | None:
    try:
        parsed = jmespath.compile(text)
    except JMESPathError as exc:
        report.add(path, _parse_error(text, exc))
        return None
    for name, arity in _function_calls(parsed.parsed):
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


def _function_calls(node: dict[str, Any]) -> Iterator[tuple[str, int]]:
    if node.get("type") == "function_expression":
        yield node["value"], len(node["children"])
    for child in node.get("children", ()):
        if isinstance(child, dict):
            yield from _function_calls(child)
