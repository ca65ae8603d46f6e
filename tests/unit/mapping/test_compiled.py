"""JMESPath compiled to closures (relay/mapping/compiled.py) gives what jmespath's own
interpreter gives: on every expression and example body of mappings/, on the corner cases of
jmespath's semantics, and on generated expressions over generated data."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import jmespath
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jmespath.exceptions import JMESPathError
from jmespath.visitor import TreeInterpreter

from relay.mapping import compiled
from relay.mapping.functions import OPTIONS
from relay.mapping.model import Expr
from relay.sources import load_endpoint, mapping_files
from relay.sources.selftest import case_request
from tests.conftest import MAPPINGS

ENGATI = {"ENGATI_CUSTOMER_ID": "1", "ENGATI_BOT_KEY": "b", "ENGATI_API_KEY": "k"}


class Interpreter(TreeInterpreter):
    """jmespath's interpreter, the oracle; but ordering text against a number gives null (as
    compiled.py does) where it raised TypeError."""

    def visit_comparator(self, node: dict[str, Any], value: Any) -> Any:
        if node["value"] in self._EQUALITY_OPS:
            return super().visit_comparator(node, value)
        left, right = (self.visit(child, value) for child in node["children"])
        if isinstance(left, str) != isinstance(right, str):
            return None
        return super().visit_comparator(node, value)


ORACLE = Interpreter(OPTIONS)


def outcome(run: Any, data: Any) -> tuple[str, Any]:
    """What a search gives: its value (as JSON, so that 1 and True differ), or its error."""
    try:
        return "value", json.dumps(run(data), sort_keys=True, default=repr)
    except JMESPathError as exc:
        return "error", type(exc).__name__


def agree(text: str, data: Any) -> tuple[str, Any]:
    """The compiled expression's outcome on `data`, asserted equal to the interpreter's."""
    expr = Expr(text, jmespath.compile(text))
    interpreted = outcome(lambda value: ORACLE.visit(expr.parsed.parsed, value), data)
    assert outcome(expr.search, data) == interpreted, text
    return interpreted


def expressions(value: Any) -> list[Expr]:
    """Every Expr in a loaded mapping (its dataclasses, tuples and dicts, walked)."""
    if isinstance(value, Expr):
        return [value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return [e for f in dataclasses.fields(value) for e in expressions(getattr(value, f.name))]
    if isinstance(value, tuple | list):
        return [e for item in value for e in expressions(item)]
    if isinstance(value, dict):
        return [e for item in value.values() for e in expressions(item)]
    return []


@pytest.mark.parametrize("path", mapping_files(MAPPINGS), ids=lambda p: p.stem)
def test_every_example_expression_agrees(path, monkeypatch):
    """Each expression of each mapping in mappings/, on each of its tests' bodies (and on
    the item of a mapping with `each`); some of them find values, so the test has teeth."""
    for name, value in ENGATI.items():
        monkeypatch.setenv(name, value)
    endpoint = load_endpoint(path)
    mapping = endpoint.mapping
    found = 0
    for case in mapping.tests:
        raw, headers = case_request(endpoint, case)
        envelope = endpoint.preset.envelope(raw, headers, case.get("query", {}))
        scopes = [envelope]
        if mapping.each is not None:
            items = mapping.each.search(envelope)
            scopes += [{**envelope, "item": item} for item in items or []]
        for scope in scopes:
            for expr in expressions(mapping):
                kind, value = agree(expr.text, scope)
                found += kind == "value" and value != "null"
    assert found, "no expression found anything in the examples"


CASES = [
    # equality: 0 and 1 never equal a boolean; text and null compare as Python does
    ("a == `1`", {"a": True}), ("a == `0`", {"a": False}), ("a != `1`", {"a": True}),
    ("a == `true`", {"a": 1}), ("a == 'x'", {"a": "x"}), ("'x' == a", {"a": "y"}),
    ("a == `null`", {}), ("a != `null`", {"a": 0}), ("a == b", {"a": [1], "b": [1]}),
    ("a == `1.0`", {"a": 1}), ("`\"x\"` == a", {"a": "x"}), ("'1' == a", {"a": 1}),
    # ordering: numbers and text only, otherwise null
    ("a < b", {"a": 1, "b": 2}), ("a >= b", {"a": "b", "b": "a"}), ("a < b", {"a": 1, "b": "2"}),
    ("a > `1`", {"a": True}), ("a <= b", {"a": None, "b": 1}), ("a < b", {"a": [], "b": []}),
    # fields of what is not an object
    ("a.b.c", {"a": "text"}), ("a.b", {"a": [{"b": 1}]}), ("a.b.c", None), ("a", [1]),
    ("a.\"b c\"", {"a": {"b c": 5}}), ("a.b.c", {"a": {"b": {"c": 0}}}),
    # projections, filters, flatten, indexes, slices
    ("a[*].b", {"a": [{"b": 1}, {"c": 2}, {"b": None}, 3]}), ("a[*].b", {"a": {"b": 1}}),
    ("a[?b == `1`].c", {"a": [{"b": 1, "c": 2}, {"b": True, "c": 3}, {"b": 1}]}),
    ("a[?b].c", {"a": [{"b": 0, "c": 1}, {"b": "", "c": 2}, {"b": [], "c": 3}, {"b": {}}]}),
    ("a[?b > `1`]", {"a": [{"b": 2}, {"b": "3"}, {"b": None}]}), ("a[?b]", {"a": "x"}),
    ("a[]", {"a": [[1, 2], 3, [[4]]]}), ("a[][]", {"a": [[1, [2]], 3]}), ("a[]", {"a": 1}),
    ("a[0]", {"a": [1]}), ("a[-1]", {"a": [1, 2]}), ("a[5]", {"a": [1]}), ("a[0]", {"a": "xy"}),
    ("a[1:3]", {"a": [1, 2, 3, 4]}), ("a[::-1]", {"a": [1, 2]}), ("a[1:]", {"a": "text"}),
    ("*.b", {"x": {"b": 1}, "y": {"c": 2}}), ("*.b", [1]), ("a.*", {"a": {"x": 1, "y": None}}),
    ("a[*][0]", {"a": [[1], [], 2]}), ("a[0][1]", {"a": [[1, 2]]}),
    # pipes stop projections
    ("a[*].b | [0]", {"a": [{"b": 1}, {"b": 2}]}), ("a[*].b[0]", {"a": [{"b": [1]}, {"b": 2}]}),
    ("a | b | c", {"a": {"b": {"c": 1}}}),
    # or, and, not: JMESPath's falsiness (0 is true)
    ("a || b", {"a": 0, "b": 1}), ("a || b", {"a": "", "b": 1}), ("a || b", {"a": {}, "b": 2}),
    ("a && b", {"a": [], "b": 1}), ("a && b", {"a": 0, "b": 1}), ("!a", {"a": 0}),
    ("!a", {"a": 0.0}), ("!a", {"a": ""}), ("!a", {"a": False}), ("!a", {}), ("!a", {"a": [0]}),
    # multi-selects, literals, current node, functions (jmespath's and relay's own)
    ("{x: a, y: b}", {"a": 1}), ("{x: a}", None), ("[a, b]", {"a": 1}), ("[a]", None),
    ("a.[b, c]", {"a": {"b": 1}}), ("a.{x: b}", {"a": [1]}), ("`[1, {\"a\": 2}]`", None),
    ("@", {"a": 1}), ("a[?@ == `2`]", {"a": [1, 2, 2]}), ("length(a)", {"a": "héllo"}),
    ("length(a)", {"a": 5}), ("sort_by(a, &b)[*].b", {"a": [{"b": 2}, {"b": 1}]}),
    ("max_by(a, &b).b", {"a": [{"b": 2}, {"b": 3}]}), ("to_string(a)", {"a": [1]}),
    ("lower(a)", {"a": "AbC"}), ("lower(a)", {"a": None}), ("lower(a)", {"a": 1}),
    ("join(', ', a[*].b)", {"a": [{"b": "x"}, {"b": "y"}]}), ("not_null(a, b)", {"b": 0}),
    ("contains(a, 'x')", {"a": "axe"}), ("keys(@)", {"a": 1, "b": 2}), ("abs(a)", {"a": "x"}),
]


@pytest.mark.parametrize(("text", "data"), CASES, ids=[text for text, _ in CASES])
def test_jmespath_corner_cases_agree(text, data):
    agree(text, data)


# Generated expressions over generated data: names from a small set so that they meet.
NAMES = ["a", "b", "type"]
LITERALS = ["`0`", "`1`", "`2`", "`true`", "`false`", "`null`", "'a'", "'1'", "`[]`", "`{}`",
            "`1.5`", "`\"b\"`"]
scalars = st.none() | st.booleans() | st.sampled_from([0, 1, 2, 1.5, -1]) | st.sampled_from(
    ["", "a", "b", "1", "A"])
data = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
    st.sampled_from(NAMES), inner, max_size=3), max_leaves=12)


def _expression(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.tuples(inner, st.sampled_from(NAMES)).map(lambda p: f"{p[0]}.{p[1]}"),
        inner.map(lambda e: f"{e}[0]"), inner.map(lambda e: f"{e}[-1]"),
        inner.map(lambda e: f"{e}[]"), inner.map(lambda e: f"{e}[1:]"),
        st.tuples(inner, st.sampled_from(NAMES)).map(lambda p: f"{p[0]}[*].{p[1]}"),
        st.tuples(inner, inner, inner).map(lambda p: f"{p[0]}[?{p[1]}].{p[2]}"),
        st.tuples(inner, st.sampled_from(["==", "!=", "<", ">=", "||", "&&", "|"]), inner).map(
            lambda p: f"({p[0]} {p[1]} {p[2]})"),
        inner.map(lambda e: f"!{e}"), inner.map(lambda e: f"length({e})"),
        st.tuples(inner, inner).map(lambda p: f"[{p[0]}, {p[1]}]"),
        st.tuples(inner, inner).map(lambda p: f"{{x: {p[0]}, y: {p[1]}}}"),
        inner.map(lambda e: f"{e}.*"), inner.map(lambda e: f"not_null({e}, `7`)"),
    )


texts = st.recursive(st.sampled_from(NAMES + LITERALS + ["@"]), _expression, max_leaves=6)


# A wider grammar: slices with steps, functions (jmespath's and relay's, exprefs included),
# projections inside filters and multi-selects, quoted names; over data mixing booleans
# with 0 and 1, floats with ints, empty containers and text that looks like numbers. Every
# outcome must be a value or a JMESPathError on both sides (anything else is a 500).
WIDE_NAMES = ["a", "b", '"c d"']
WIDE_LITERALS = ["`0`", "`1`", "`-1`", "`true`", "`null`", "'a'", "'1'", "`[]`", "`{}`",
                 "`1.0`", "`[1, \"a\"]`", "`{\"a\": 0}`"]
ONE_ARGUMENT = ["length", "to_string", "to_number", "to_array", "type", "abs", "keys", "values",
                "reverse", "sort", "max", "min", "sum", "avg", "ceil", "floor", "lower", "trim",
                "digits", "concat", "from_json"]
TWO_ARGUMENTS = ["contains", "starts_with", "join", "merge", "not_null", "split", "matches",
                 "extract"]
wide_scalars = st.none() | st.booleans() | st.sampled_from(
    [0, 1, 2, 1.0, 0.0, 1.5, -1, 10**20, "", "a", "1", "1.5", " a ", "é", "[1]"])
wide_data = st.recursive(wide_scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
    st.sampled_from(["a", "b", "c d"]), inner, max_size=3), max_leaves=14)
ENDS = st.sampled_from(["", "0", "1", "-1", "-2", "5"])


def _wide(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.tuples(inner, st.sampled_from(WIDE_NAMES)).map(lambda p: f"{p[0]}.{p[1]}"),
        st.tuples(inner, ENDS, ENDS, st.sampled_from(["", ":2", ":-1", ":-2"])).map(
            lambda p: f"{p[0]}[{p[1]}:{p[2]}{p[3]}]"),
        inner.map(lambda e: f"{e}[-1]"), inner.map(lambda e: f"{e}[][]"),
        inner.map(lambda e: f"{e}.*.a"), inner.map(lambda e: f"{e}[*][*]"),
        st.tuples(inner, inner).map(lambda p: f"{p[0]}[*] | {p[1]}"),
        st.tuples(inner, inner, inner).map(lambda p: f"{p[0]}[?{p[1]} | {p[2]}]"),
        st.tuples(inner, inner).map(lambda p: f"{p[0]}[?{p[1]}[]].a"),
        st.tuples(inner, inner).map(lambda p: f"{p[0]}[*].[{p[1]}, a]"),
        st.tuples(inner, inner).map(lambda p: f"{p[0]}[*].{{x: {p[1]}, \"y z\": b}}"),
        st.tuples(inner, st.sampled_from(["==", "!=", "<", "<=", ">", "||", "&&"]), inner).map(
            lambda p: f"({p[0]} {p[1]} {p[2]})"),
        inner.map(lambda e: f"!{e}"),
        st.tuples(st.sampled_from(ONE_ARGUMENT), inner).map(lambda p: f"{p[0]}({p[1]})"),
        st.tuples(st.sampled_from(TWO_ARGUMENTS), inner, inner).map(
            lambda p: f"{p[0]}({p[1]}, {p[2]})"),
        st.tuples(st.sampled_from(["sort_by", "max_by", "min_by"]), inner, inner).map(
            lambda p: f"{p[0]}({p[1]}, &{p[2]})"),
        st.tuples(inner, inner).map(lambda p: f"map(&{p[0]}, {p[1]})"),
    )


wide_texts = st.recursive(st.sampled_from(WIDE_NAMES + WIDE_LITERALS + ["@", "*", "[*]"]),
                          _wide, max_leaves=7)


@settings(max_examples=1200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.tuples(texts, data) | st.tuples(wide_texts, wide_data))
def test_generated_expressions_agree(case):
    text, value = case
    try:
        jmespath.compile(text)
    except JMESPathError:
        return  # a combination the grammar does not allow (`@.a`, a literal's field)
    agree(text, value)


def test_a_node_type_compiled_py_does_not_know_runs_through_the_interpreter(monkeypatch):
    """What a later jmespath may add: the interpreter's own visit, for that node alone."""
    monkeypatch.delitem(compiled._BUILDERS, "filter_projection")
    assert agree("a[?b == `1`].c | [0]", {"a": [{"b": 1, "c": "x"}]}) == ("value", '"x"')
