"""A commented mapping drafted from a captured sample (`relay draft NAME SAMPLE_ID`).

The sender is recognised (detect.py) and picks the preset; the body is read as that preset
reads it (a batch's first item, for the presets that split one); phone candidates are listed
best first, the best one used and the others left as comments; scalar fields that look like
names, emails, choices and amounts become attributes. Every path is evaluated on the sample
before it is proposed. The `tests:` entry reads the sample from examples/ beside the mapping
and expects what the drafted mapping makes of it, so that the draft passes `relay check` as
written; what only the integrator knows (the flow key, the secret) is marked FILL IN.
"""

from __future__ import annotations

import json
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jmespath
import phonenumbers

from relay.capture.detect import detect
from relay.capture.phones import Candidate, find_phones, is_phone_key
from relay.errors import BodyError, MappingLoadError, RelayError
from relay.mapping.functions import OPTIONS
from relay.mapping.phone import PhoneError, normalise
from relay.sources.base import Preset
from relay.sources.body import media_type
from relay.sources.endpoint import evaluate_answered, load_endpoint
from relay.sources.folder import write_atomically
from relay.sources.presets import PRESETS
from relay.sources.selftest import run_tests

FLOW_PLACEHOLDER = "FILL_IN_THE_FLOW_KEY"
MAX_ATTRIBUTES = 12
MAX_LEAVES = 2000
# What may be written unquoted (fullmatch: `$` alone would let a trailing newline through).
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_.\[\]]*")
_ORGANIZATION_ID = re.compile(r"00D[A-Za-z0-9]{12}(?:[A-Za-z0-9]{3})?")  # Salesforce's
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")
_NAME_KEY = re.compile(r"(^|_)((first|last|full|given|family|display|customer)_?)?name$|^first$|"
                       r"^last$")
_CHOICE_KEY = re.compile(r"label|choice|category|plan|option|interest|product|city|country|"
                         r"stage|source|day|status|title|company|course|service")
_AMOUNT_KEY = re.compile(r"amount|total|price|subtotal|quantity|score|fee|cost|revenue")
_NUMERIC = re.compile(r"^-?\d+(\.\d+)?$")
# Keys that tell the elements of a list apart, best first: `field.ref` is Typeform's.
_DISCRIMINATORS = (("field", "ref"), ("ref",), ("key",), ("label",), ("name",), ("type",))
# Keys that say what kind of value an answer holds rather than which question it answers
# (Typeform's `text`, `email`, `choice.label`): an attribute is named after the question.
_GENERIC_KEYS = {"text", "value", "answer", "label", "email", "number", "phone_number",
                 "boolean", "date", "url", "choice", "choices", "labels", "full"}
_EXTENSIONS = {"application/json": "json", "text/xml": "xml", "application/xml": "xml",
               "application/x-www-form-urlencoded": "form"}


@dataclass(frozen=True)
class Draft:
    yaml: str
    example: str  # the sample's file, relative to the mapping: examples/<name>-sample-<id>.ext
    body: bytes
    preset: str


def draft(name: str, sample: dict[str, Any], region: str | None = "IN") -> Draft:
    if region is not None and region.upper() not in phonenumbers.SUPPORTED_REGIONS:
        raise RelayError(f"{region[:10]!r} is no region libphonenumber knows: use a country's "
                         "two letters, such as IN, US or GB")
    region = region.upper() if region else None
    headers, raw, query = sample["headers"], sample["body"], sample["query"]
    detected = detect(headers, raw)
    preset = PRESETS[detected.preset]
    try:
        envelope = preset.envelope(raw, headers, query)
    except BodyError:
        preset = PRESETS["generic"]
        try:
            envelope = preset.envelope(raw, headers, query)
        except BodyError as exc:
            raise RelayError(f"sample {sample['id']} has a body the relay cannot read: {exc}; "
                             "a mapping for it would refuse it too") from None
    scopes, prefix = [envelope], "body"
    if preset.each:
        items = jmespath.search(preset.each, envelope)
        if isinstance(items, list) and items:
            scopes, prefix = [{**envelope, "item": item} for item in items[:10]], "item"
    scope = scopes[0]
    # What the preset adds to the envelope (google-ads' columns) reads better than the body's
    # list it comes from: its fields come first.
    added = [] if prefix != "body" else [
        leaf for key in preset.envelope_keys for leaf in _leaves(scope[key], key, key, scope)]
    leaves = added + _leaves(scope[prefix], prefix, prefix, scope)
    # A batch's items may carry their phone under different fields (Salesforce leads with
    # a MobilePhone or a Phone): every item's candidates count, the first item's first.
    phones: list[Candidate] = []
    for each_scope in scopes:
        found = (added if each_scope is scope else []) + _leaves(
            each_scope[prefix], prefix, prefix, each_scope)
        phones += [c for c in find_phones(found, region) if _reads(c, each_scope, region)
                   and c.path not in {p.path for p in phones}]
    attributes = _attributes(leaves, {c.path for c in phones})
    example = f"examples/{name}-sample-{sample['id']}.{_extension(headers)}"
    test_headers = _test_headers(preset, headers)
    text = _yaml(name, sample, detected.why, preset, envelope, phones, attributes, region)
    answer = preset.lookup_draft["answer"] if preset.lookup_draft else None
    text += _tests(name, sample, text, example, raw, test_headers, query, answer)
    return Draft(text, example, raw, preset.name)


def write(folder: Path, name: str, made: Draft) -> tuple[Path, Path]:
    """Write the mapping and its sample into the mappings folder, never over a file."""
    mapping, example = folder / f"{name}.yaml", folder / made.example
    for file in (mapping, example):
        if file.exists():
            raise RelayError(f"{file} exists already: the draft does not overwrite it (print "
                             "it without --write, or move the file away)")
    example.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(example, made.body)  # first: the mapping's test reads it
    write_atomically(mapping, made.yaml.encode("utf-8"))  # a running relay loads it whole
    return mapping, example


# --- the body's fields ---------------------------------------------------------------------

def _segment(key: str) -> str:
    return key if _IDENTIFIER.fullmatch(key) else json.dumps(key)


def _literal(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _leaves(value: Any, path: str, key: str, scope: dict[str, Any], filtered: bool = False,
            depth: int = 0, out: list[tuple[str, str, Any]] | None = None,
            ) -> list[tuple[str, str, Any]]:
    """(JMESPath, key, value) of every scalar; a list of objects told apart by a key (see
    _DISCRIMINATORS) is addressed by it, `answers[?field.ref=='email'].email | [0]`, else
    by index. Each path is checked to give its value on the sample."""
    out = [] if out is None else out
    if len(out) >= MAX_LEAVES or depth > 12:
        return out
    if isinstance(value, dict):
        for k, v in value.items():
            name = key if filtered and str(k) in _GENERIC_KEYS else str(k)
            _leaves(v, f"{path}.{_segment(str(k))}", name, scope, filtered, depth + 1, out)
    elif isinstance(value, list):
        by = None if filtered else _discriminator(value)
        for index, element in enumerate(value[:20]):
            if by is not None:
                tag = element
                for part in by:
                    tag = tag[part]
                step = f"{path}[?{'.'.join(by)}=={_literal(tag)}]"
                _leaves(element, step, f"{tag}", scope, True, depth + 1, out)
            else:
                _leaves(element, f"{path}[{index}]", key, scope, filtered, depth + 1, out)
    elif value is not None:
        expression = f"{path} | [0]" if filtered else path
        try:
            found = jmespath.search(expression, scope, options=OPTIONS)
        except jmespath.exceptions.JMESPathError:
            found = None
        if found == value and not isinstance(found, dict | list):
            out.append((expression, _attribute_name(key), value))
    return out


def _discriminator(items: list[Any]) -> tuple[str, ...] | None:
    if len(items) < 2 or not all(isinstance(i, dict) for i in items):
        return None
    for by in _DISCRIMINATORS:
        tags = []
        for item in items:
            tag = item
            for part in by:
                tag = tag.get(part) if isinstance(tag, dict) else None
            tags.append(tag)
        if all(isinstance(t, str) and t for t in tags) and len(set(tags)) == len(tags):
            return by
    return None


def _attribute_name(key: str) -> str:
    snake = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", key).lower()
    return re.sub(r"[^a-z0-9]+", "_", snake).strip("_") or "field"


def _reads(candidate: Candidate, scope: dict[str, Any], region: str | None) -> bool:
    """Whether the mapping's phone parser reads the candidate's value as its number."""
    try:
        value = jmespath.search(candidate.path, scope, options=OPTIONS)
        return "+" + normalise(value, region) == candidate.number
    except (PhoneError, jmespath.exceptions.JMESPathError):
        return not candidate.whole  # inside a text: listed as a comment only


def _attributes(leaves: list[tuple[str, str, Any]], phones: set[str]) -> dict[str, str]:
    chosen: dict[str, str] = {}
    emails = 0
    for path, key, value in leaves:
        if path in phones or is_phone_key(key) or len(chosen) >= MAX_ATTRIBUTES:
            continue
        name = key if _looks_like_an_attribute(key, value) else None
        if isinstance(value, str) and _EMAIL.match(value):
            name = "email" if not emails else key
            emails += 1
        if name and name not in chosen:
            chosen[name] = path
    return chosen


def _looks_like_an_attribute(key: str, value: Any) -> bool:
    """A name, a choice or an amount (emails are told by their value)."""
    if isinstance(value, str) and len(value) <= 80 and _NAME_KEY.search(key):
        return not any(ch.isdigit() for ch in value)
    if isinstance(value, str) and len(value) <= 60 and _CHOICE_KEY.search(key):
        return True
    return bool(_AMOUNT_KEY.search(key)) and not isinstance(value, bool) and (
        isinstance(value, int | float) or (isinstance(value, str) and bool(_NUMERIC.match(value))))


# --- the file --------------------------------------------------------------------------------

def _quoted(expression: str) -> str:
    # Anything else as a JSON string, which YAML reads as the same double-quoted string:
    # text from a sample (keys, values) never becomes a line of its own.
    return expression if _PLAIN.fullmatch(expression) else json.dumps(expression)


def _extension(headers: dict[str, str]) -> str:
    return _EXTENSIONS.get(media_type(headers.get("content-type")), "txt")


def _test_headers(preset: Preset, headers: dict[str, str]) -> dict[str, str]:
    """What the test must send besides the body: its content type (a multipart boundary)
    and the headers the preset's event id reads."""
    kept = {"content-type": headers["content-type"]} if "content-type" in headers else {}
    for name, value in headers.items():
        if preset.id and f'"{name}"' in preset.id:
            kept[name] = value
    return kept


def _yaml(name: str, sample: dict[str, Any], why: str, preset: Preset,
          envelope: dict[str, Any], phones: list[Candidate], attributes: dict[str, str],
          region: str | None) -> str:
    lines = [
        f"# Drafted by `relay draft {name} {sample['id']}` from a sample captured at "
        f"/hooks/{name}.",
        f"# The sender looks like {preset.name}: {why}.",
        "# Review every line; FILL IN marks what only you know. `relay check` runs the test.",
        f"description: {preset.name} webhooks posted to /hooks/{name} (drafted from sample "
        f"{sample['id']})",
        f"source: {preset.name}",
    ]
    if preset.name == "salesforce":
        # Written only when it is an org id: the sample's sender, unchecked, chose it.
        organization = envelope["body"].get("OrganizationId")
        if isinstance(organization, str) and _ORGANIZATION_ID.fullmatch(organization):
            lines.append(f"organization_id: {organization}  # the org that sent the sample: "
                         "only it may post")
        else:
            lines.append("organization_id: FILL_IN_YOUR_ORG_ID  # the sample has no "
                         "Salesforce org id (00D...): only your org may post")
    elif preset.signed and preset.secret_env:
        lines.append(f"secret: ${{{preset.secret_env}}}  # FILL IN: set {preset.secret_env} "
                     f"in the relay's environment (until then /hooks/{name} answers 503)")
        if preset.verify_token_env:
            lines.append(f"verify_token: ${{{preset.verify_token_env}}}  # FILL IN: set "
                         f"{preset.verify_token_env}: the Verify Token of the app's Webhooks "
                         "settings")
        if preset.lookup_draft:
            env = preset.lookup_draft["token_env"]
            lines += ["lookup:  # what the webhook only names is fetched before it is mapped",
                      f"  token: ${{{env}}}  # FILL IN: set {env} (docs/sources.md says "
                      "which token)"]
        if preset.name == "jotform":
            lines.append(f"# Jotform signs nothing: its webhook URL must end in "
                         f"?token=<{preset.secret_env}>")
    else:
        lines += ["# This sender's requests are not verified: add verify: and a secret when "
                  "it can sign or send a token",
                  "# (docs/sources.md), e.g. secret: ${WEBHOOK_TOKEN} and "
                  "verify: {type: token, header: X-Relay-Token}"]
    lines.append("phone:")
    best = next((c for c in phones if c.whole), None)
    # Fields named like a phone, best first: `a || b` takes the first that is set (a lead
    # may give a mobile or a landline).
    named = [c for c in phones if c.whole and c.score >= 4][:3]
    if preset.lookup_draft:
        lines.append(f"  path: {preset.lookup_draft['phone']}  # from the lookup's answer: "
                     "FILL IN the field your form names it by")
    elif best is None:
        lines.append("  path: body.phone  # FILL IN: no phone number was found in the sample")
    elif len(named) > 1:
        lines.append(f"  path: {_quoted(' || '.join(c.path for c in named))}  # "
                     f"{', '.join(c.number for c in named)} in the sample")
    else:
        lines.append(f"  path: {_quoted(best.path)}  # {best.number} in the sample")
    if region:
        lines.append(f"  region: {region}  # for numbers written without a country code")
    others = [c for c in phones if c is not best and (len(named) < 2 or c not in named)]
    if others:
        lines.append("  # other phone numbers in the sample, best first:")
    for candidate in others:
        path = candidate.path if candidate.whole else (
            f"extract({candidate.path}, '(\\+?[0-9][0-9 ().-]{{6,}}[0-9])')")
        lines.append(f"  # path: {_quoted(path)}  # {candidate.number}"
                     + ("" if candidate.whole else " (inside a text)"))
    if attributes:
        lines.append("attributes:  # Engati attribute: expression (missing values are left out)")
        lines += [f"  {attr}: {_quoted(path)}" for attr, path in attributes.items()]
    lines += ["flows:", f"  - flow_key: {FLOW_PLACEHOLDER}  # FILL IN: the Engati flow's key "
              "(the (i) icon in the flow builder)",
              "# engati: customer_id, bot_key and api_key default to ENGATI_CUSTOMER_ID, "
              "ENGATI_BOT_KEY and ENGATI_API_KEY"]
    return "\n".join(lines) + "\n"


def _tests(name: str, sample: dict[str, Any], text: str, example: str, raw: bytes,
           headers: dict[str, str], query: dict[str, Any], answer: Any = None) -> str:
    """The `tests:` entry: the sample from examples/ (with `answer` as its lookup's, for a
    sender whose webhooks are looked up), expecting what the draft gives it."""
    case: dict[str, Any] = {"name": f"the sample captured at /hooks/{name} (sample "
                                    f"{sample['id']})", "body": example}
    if headers:
        case["headers"] = headers
    if query:
        case["query"] = query
    if answer is not None:
        case["lookup"] = answer
    with tempfile.TemporaryDirectory() as folder:
        file = Path(folder) / f"{name}.yaml"
        (Path(folder) / example).parent.mkdir(parents=True)
        (Path(folder) / example).write_bytes(raw)
        file.write_text(text, encoding="utf-8")
        try:
            endpoint = load_endpoint(file, env={})
        except MappingLoadError as exc:
            raise RelayError("the draft does not load (a bug of the draft): "
                             + "; ".join(str(p) for p in exc.problems)) from None
        lowered = {k.lower(): v for k, v in headers.items()}
        result = (endpoint.evaluate_raw(raw, lowered, query) if answer is None
                  else evaluate_answered(endpoint, raw, lowered, query, answer))
        if result.errors:
            case["expect"] = {"errors": sorted({e.field for e in result.errors})}
        elif result.skipped:
            case["expect"] = {"skipped": True}
        else:
            wanted = [{"phone": d.phone, "attributes": d.attributes} for d in result.deliveries]
            case["expect"] = wanted[0] if len(wanted) == 1 else {"deliveries": wanted}
        # ASCII JSON: no character of the sample is a line break to YAML (U+2028 is one).
        tests = "tests:\n  - " + json.dumps(case) + "\n"
        file.write_text(text + tests, encoding="utf-8")
        failed = [line for outcome in run_tests(load_endpoint(file, env={}))
                  for line in outcome.failures]
        if failed:
            raise RelayError("the draft's test does not pass (a bug of the draft): "
                             + "; ".join(failed))
    return tests
