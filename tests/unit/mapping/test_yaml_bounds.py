"""YAML from anyone costs in proportion to its length: alias bombs, cycles and deep nesting
are refused at their line before anything is built; every YAML error has a line."""

from __future__ import annotations

import time

from relay.mapping.yamlfile import MAX_DEPTH, parse_yaml


def _problems(text: str) -> list:
    started = time.monotonic()
    _, _, problems = parse_yaml("m.yaml", text)
    assert time.monotonic() - started < 1.0
    return problems


def test_a_billion_laughs_is_refused():
    """Nine aliases of nine aliases of ...: refused once the expansion passes the bound."""
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 9):
        prev, name = chr(96 + i), chr(97 + i)
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    (problem,) = _problems("\n".join(lines) + "\n")
    assert "aliases are expanded" in problem.message and problem.line is not None


def test_an_alias_inside_its_own_anchor_is_refused():
    (problem,) = _problems("a: &a [1, *a]\n")
    assert "cycle" in problem.message and problem.line == 1


def test_deep_nesting_is_refused():
    (problem,) = _problems("x: " + "[" * 5000 + "]" * 5000 + "\n")
    assert f"deeper than {MAX_DEPTH}" in problem.message and problem.line == 1


def test_an_unprintable_character_has_its_line():
    (problem,) = _problems("phone: body.phone\nflows: \x07\n")
    assert problem.line == 2


def test_ordinary_aliases_still_load():
    data, _, problems = parse_yaml("m.yaml", "a: &x {k: 1}\nb: *x\n")
    assert problems == [] and data == {"a": {"k": 1}, "b": {"k": 1}}


def test_values_yaml_cannot_build_are_problems_at_their_line():
    """An impossible date or an integer longer than Python converts: a problem at its line
    (PyYAML raised ValueError, which stopped the relay from booting)."""
    (date,) = _problems("phone: body.phone\ndescription: 2026-02-30\n")
    assert date.line == 2 and "quote it" in date.message
    (month,) = _problems("a:\n  - x\n  - 2026-13-01\n")
    assert month.line == 3
    (big,) = _problems("n: " + "9" * 5000 + "\n")
    assert big.line == 1 and "4300 digits" in big.message
