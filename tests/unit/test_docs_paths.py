"""Every path docs/sources.md shows works on the example payload its section names.

The page marks what it shows: a `**Paths** (checked against `mappings/examples/X`):` list, one
path per item (its first code span); an `As expressions see `mappings/examples/X`` JSON block;
a raw form or XML body followed by `is seen as` and its JSON; Typeform's table of answer types.
A section's other code spans that start with `body`, `item`, `headers` or `query` are paths too.
Each runs through the relay's own parsing (the sender's preset, with the headers and query of
the mapping test that uses the same file) and its own JMESPath evaluation (with the relay's
functions), and must give a value: not null, not empty.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import jmespath
import pytest

from relay.mapping.model import Expr
from relay.sources import load_endpoint
from relay.sources.body import parse_body
from relay.sources.presets import PRESETS
from relay.sources.selftest import case_answer, case_request
from tests.conftest import MAPPINGS, ROOT

PAGE = ROOT / "docs" / "sources.md"
_PATHS = re.compile(r"^\*\*Paths\*\* \(([^)]*)\):\n\n((?:- .*\n)+)", re.MULTILINE)
_AGAINST_FILE = re.compile(r"checked against `mappings/(examples/[^`]+)`")
_AGAINST_ABOVE = re.compile(r"checked against the (form|XML) above")
_ITEM = re.compile(r"^- (`+) ?(.+?) ?\1(?!`)", re.MULTILINE)
# the marker, its sentence (no code block in between), then the JSON block that follows it
_AS_SEEN = re.compile(r"As expressions see `mappings/(examples/[^`]+)`(?:(?!```).)*?\n\n```json\n"
                      r"(.*?)\n```", re.DOTALL)
_RAW_PAIR = re.compile(r"```(text|xml)\n(.*?)\n```\n\nis seen as\n\n```json\n(.*?)\n```", re.DOTALL)
_RAW_TYPES = {"text": "application/x-www-form-urlencoded", "xml": "text/xml"}
_PROSE_PATH = re.compile(r"(?<!`)`((?:body|item|headers|query|lead)[.\[][^`]*)`(?!`)")
_TYPEFORM_TABLE = "| question (`field.type`) | answer `type` | the value |"
TYPEFORM_EXAMPLE = "examples/typeform-every-answer.json"
TYPEFORM_TYPES = {"text", "email", "phone_number", "choice", "choices", "boolean", "number",
                  "date", "url", "file_url"}


@dataclass
class Sample:
    """A body as expressions see it: the scopes a path is tried in (one per `each` item)."""

    name: str
    preset: str
    scopes: list[dict[str, Any]]


@dataclass
class Section:
    title: str
    text: str
    samples: list[Sample] = field(default_factory=list)
    paths: list[tuple[str, Sample]] = field(default_factory=list)


def _sample(example: str) -> Sample:
    """The example file parsed as the mapping whose test posts it parses it."""
    for file in sorted(MAPPINGS.glob("*.yaml")):
        endpoint = load_endpoint(file, env={})
        for case in endpoint.mapping.tests:
            if case["body"] == example:
                raw, headers = case_request(endpoint, case)
                envelope = endpoint.preset.envelope(raw, headers, case.get("query", {}))
                if endpoint.mapping.lookup is not None and "lookup" in case:
                    # The lookup's answer, as the test gives it: `lead.fields.<name>` too.
                    envelope[endpoint.mapping.lookup.name] = endpoint.preset.looked_up(
                        case_answer(endpoint, case))
                scopes = [envelope]
                if endpoint.mapping.each is not None:
                    scopes = [{**envelope, "item": item}
                              for item in endpoint.mapping.each.search(envelope)]
                return Sample(example, endpoint.preset.name, scopes)
    raise AssertionError(f"docs/sources.md names {example}, which no mapping test in "
                         f"{MAPPINGS} posts")


def _sections() -> list[Section]:
    text = PAGE.read_text(encoding="utf-8")
    sections = []
    for chunk in re.split(r"^(?=## )", text, flags=re.MULTILINE)[1:]:
        title = chunk.splitlines()[0].removeprefix("## ")
        section = Section(title, chunk)
        raw_samples: dict[str, Sample] = {}
        for match in _RAW_PAIR.finditer(chunk):
            kind, raw, _ = match.groups()
            body = parse_body(raw.encode(), _RAW_TYPES[kind])
            raw_samples["XML" if kind == "xml" else "form"] = Sample(
                f"the {kind} above", "generic", [{"body": body, "headers": {}, "query": {}}])
        for match in _PATHS.finditer(chunk):
            against, items = match.groups()
            if found := _AGAINST_FILE.search(against):
                sample = _sample(found.group(1))
            elif found := _AGAINST_ABOVE.search(against):
                sample = raw_samples[found.group(1)]
            else:
                raise AssertionError(f"{title}: a Paths list that says what it is checked "
                                     f"against, not {against!r}")
            section.samples.append(sample)
            section.paths += [(item.group(2), sample) for item in _ITEM.finditer(items)]
        sections.append(section)
    return sections


SECTIONS = _sections()


def _value(path: str, sample: Sample) -> list[Any]:
    """What the path gives in each of the sample's scopes, through the relay's evaluation."""
    expr = Expr(path, jmespath.compile(path))
    return [expr.search(scope) for scope in sample.scopes]


def _given(value: Any) -> bool:
    return value not in (None, "", [], {})


def _listed():
    for section in SECTIONS:
        for path, sample in section.paths:
            yield pytest.param(path, sample, id=f"{section.title}: {path}")


def _in_prose():
    for section in SECTIONS:
        if not section.samples:
            continue
        listed = {path for path, _ in section.paths}
        for match in _PROSE_PATH.finditer(section.text):
            if match.group(1) not in listed:
                yield pytest.param(match.group(1), section.samples,
                                   id=f"{section.title}: {match.group(1)}")


class TestPaths:
    def test_every_page_section_with_paths_was_found(self):
        """The page has Paths lists, and every one of them has paths in it."""
        with_paths = [s for s in SECTIONS if s.paths]
        assert len(with_paths) >= len(PRESETS)
        assert all(s.paths for s in SECTIONS if s.samples)

    def test_every_preset_has_its_paths(self):
        """Each sender the relay has a preset for has paths checked against its example."""
        covered = {sample.preset for section in SECTIONS for sample in section.samples}
        assert set(PRESETS) <= covered

    @pytest.mark.parametrize(("path", "sample"), list(_listed()))
    def test_listed_path_gives_a_value(self, path, sample):
        """A listed path, run on its example payload, gives a value (under `each`: for one
        item at least)."""
        values = _value(path, sample)
        assert any(_given(v) for v in values), f"{path} gives {values} on {sample.name}"

    @pytest.mark.parametrize(("path", "samples"), list(_in_prose()))
    def test_path_in_the_prose_gives_a_value(self, path, samples):
        """A path written in a sender's prose gives a value on one of its examples."""
        values = [v for sample in samples for v in _value(path, sample)]
        assert any(_given(v) for v in values), f"{path} gives {values}"


class TestBodies:
    def test_json_shown_is_what_expressions_see(self):
        """Each body shown `As expressions see` a file is that file as its preset parses it
        (trimmed: what is shown must be there, as shown)."""
        shown = [(s.title, m) for s in SECTIONS for m in _AS_SEEN.finditer(s.text)]
        assert {title for title, _ in shown} >= {"Salesforce (Outbound Messages)", "Jotform"}
        for title, match in shown:
            example, block = match.groups()
            body = _sample(example).scopes[0]["body"]
            assert _contains(body, json.loads(block)), f"{title}: {example} is not seen as shown"

    def test_raw_bodies_are_seen_as_shown(self):
        """A raw form or XML body the page shows parses to exactly the JSON shown after it."""
        pairs = [m.groups() for s in SECTIONS for m in _RAW_PAIR.finditer(s.text)]
        assert {kind for kind, _, _ in pairs} == {"text", "xml"}
        for kind, raw, parsed in pairs:
            assert parse_body(raw.encode(), _RAW_TYPES[kind]) == json.loads(parsed)


class TestTypeformAnswers:
    @staticmethod
    def _rows() -> list[list[str]]:
        text = PAGE.read_text(encoding="utf-8")
        start = text.index(_TYPEFORM_TABLE)
        rows = []
        for line in text[start:].splitlines()[2:]:
            if not line.startswith("|"):
                break
            rows.append([cell.strip() for cell in line.strip("|").split("|")])
        return rows

    def test_the_table_names_every_answer_type(self):
        """The table lists the answer types integrators reach for."""
        types = {re.findall(r"`([^`]+)`", row[1])[0] for row in self._rows()}
        assert types >= TYPEFORM_TYPES

    @pytest.mark.parametrize("row", _rows(), ids=lambda row: row[1])
    def test_each_answer_type_is_read_as_the_table_says(self, row):
        """The example has an answer of each type listed, to a question of a type the row
        names, and the value key the row gives reads it."""
        answer_type = re.findall(r"`([^`]+)`", row[1])[0]
        value_key = re.findall(r"`([^`]+)`", row[2])[0]
        question_types = re.findall(r"`([^`]+)`", row[0])
        sample = _sample(TYPEFORM_EXAMPLE)
        answer = _value(f"body.form_response.answers[?type=='{answer_type}'] | [0]", sample)[0]
        assert answer is not None, f"no {answer_type} answer in {TYPEFORM_EXAMPLE}"
        assert answer["field"]["type"] in question_types
        path = f"body.form_response.answers[?type=='{answer_type}'] | [0].{value_key}"
        assert _given(_value(path, sample)[0])

    def test_a_ref_nobody_set_is_a_random_id(self):
        """The example has a question without a readable ref, as the page says happens."""
        sample = _sample(TYPEFORM_EXAMPLE)
        refs = _value("body.form_response.definition.fields[].ref", sample)[0]
        assert any(re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
                                ref) for ref in refs)


def _contains(actual: Any, shown: Any) -> bool:
    """Whether `shown` is `actual` with keys and trailing list items left out."""
    if isinstance(shown, dict):
        return isinstance(actual, dict) and all(
            key in actual and _contains(actual[key], value) for key, value in shown.items())
    if isinstance(shown, list):
        return (isinstance(actual, list) and len(shown) <= len(actual)
                and all(_contains(a, s) for a, s in zip(actual, shown, strict=False)))
    return bool(actual == shown)
