"""Static checks of a mapping's expressions: warnings, not errors, since the file may be right.

Read from jmespath's own syntax tree (`jmespath.compile(text).parsed`), never by pattern:

- an expression that reads a key the envelope does not have at its top: every expression
  sees `body`, `headers` and `query` (and `item` under `each`, and what its preset adds:
  `digest`, google-ads' `columns`); `flows[].when` also sees `phone` and `attributes`.
  `form_response.answers` where `body.form_response.answers` was meant is always null, and
  so is `attributes.x` in an attribute's own path;
- a `when` that names an attribute the mapping does not define (`attributes.tier` with no
  `tier:` under `attributes:`): always null, so the flow never matches;
- a double-quoted string where a literal was likely meant: in JMESPath `"Mumbai"` is the
  *field* named Mumbai (null here), the text is `'Mumbai'` (or the JSON literal `` `"Mumbai"` ``).
  Flagged where a field cannot be meant: at the top of the envelope, as an operand of a
  comparison with a path (`city == "Mumbai"`), and as the text argument of contains(),
  starts_with() and ends_with(). `headers."x-region"` (a key with a dash) is left alone.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from typing import Any

from jmespath.lexer import Lexer

from relay.errors import Problem
from relay.mapping.model import Expr
from relay.mapping.yamlfile import Path_, Report

ENVELOPE = ("body", "headers", "query")
# Where the operand of a node is read from the node's own input; other children apply to
# a result (the right of a pipe, a projection's elements): not the envelope's top.
_LEFT_AT_INPUT = ("index_expression", "projection", "filter_projection", "value_projection",
                  "pipe")
_ALL_AT_INPUT = ("comparator", "and_expression", "or_expression", "not_expression",
                 "function_expression", "multi_select_list", "multi_select_dict",
                 "key_val_pair", "flatten")
_TEXT_FUNCTIONS = ("contains", "starts_with", "ends_with")  # their second argument: a text


# The keys evaluated before a lookup's answer is there (to plan the fetch itself).
BEFORE_LOOKUP = ("each", "id", "lookup", "cancel")


def lint(compiled: list[tuple[Path_, Expr]], attributes: list[str], *, each: bool,
         report: Report, lookup: str | None = None,
         added: tuple[str, ...] = ()) -> tuple[Problem, ...]:
    """The warnings of a mapping's expressions, each located at its key's line. `compiled`
    holds the file's expressions by key path; `attributes`, the names it defines; `lookup`,
    the name a lookup's answer is seen under; `added`, what the preset's envelopes add
    (`digest`, google-ads' `columns`)."""
    warnings = Report(report.where, report.lines, [])
    for path, expr in compiled:
        is_when = path[0] == "flows"
        per_item = each and path[0] not in ("each", "cancel")  # cancel: reads the webhook
        roots = set(ENVELOPE) | set(added) | ({"item"} if per_item else set())
        roots |= {"phone", "attributes"} if is_when else set()
        fetched = lookup is not None and path[0] not in BEFORE_LOOKUP
        roots |= {lookup} if fetched and lookup else set()
        tokens = _tokens(expr.text)
        quoted = {t["value"] for t in tokens if t["type"] == "quoted_identifier"} - {
            t["value"] for t in tokens if t["type"] == "unquoted_identifier"}
        said: set[str] = set()
        for name in _quoted_values(expr.parsed.parsed, quoted):
            said.add(name)
            warnings.add(path, _literal_hint(name, "is a field name here, not a text"))
        for keys in dict.fromkeys(_reads(expr.parsed.parsed, True)):
            top = keys[0]
            if top in roots:
                if top == "attributes" and len(keys) > 1 and keys[1] not in attributes:
                    warnings.add(path, _unknown_attribute(keys[1], attributes))
                continue
            if top in said:
                continue
            if top in quoted:
                warnings.add(path, _literal_hint(top, "is a field name, and the envelope has "
                                                 "no such key"))
            elif top in ("null", "true", "false"):
                warnings.add(path, f"`{top}` is a field name in JMESPath (always null here); "
                             f"the {top} literal is `{top}` in backticks: `` `{top}` ``")
            elif top in ("phone", "attributes"):
                warnings.add(path, f"`{top}` is seen by flows[].when only: here it is always "
                             "null; read the value from body (as the attribute does)")
            elif top == lookup:
                warnings.add(path, f"`{top}` (the lookup's answer) is fetched after `each`, "
                             "`id` and the lookup's url are evaluated: here it is always null")
            elif top == "item":
                warnings.add(path, "`item` is set under `each` only"
                             + ("" if each else "; add `each:` or read from body"))
            else:
                warnings.add(path, f"`{top}` is not a key of what expressions see ("
                             f"{', '.join(sorted(roots))}): always null; did you mean "
                             f"body.{top}?")
    return tuple(warnings.problems)


def _tokens(text: str) -> list[dict[str, Any]]:
    return list(Lexer().tokenize(text))  # compiled already: it lexes


def _literal_hint(name: str, what: str) -> str:
    return (f"\"{name}\" {what}; for the text write '{name}' (or `\"{name}\"`), "
            "single quotes in JMESPath")


def _unknown_attribute(name: str, attributes: list[str]) -> str:
    guess = difflib.get_close_matches(name, attributes, n=1)
    hint = f"did you mean attributes.{guess[0]}?" if guess else (
        "defined: " + (", ".join(attributes) or "none"))
    return f"attributes.{name} is not an attribute of this mapping (always null): {hint}"


def _reads(node: dict[str, Any], at_top: bool) -> Iterator[tuple[str, ...]]:
    """The keys an expression reads from the envelope's top: ("body",), ("attributes",
    "tier"), ... (the second key where it is plain to see)."""
    kind, children = node.get("type"), node.get("children", [])
    if kind == "field":
        if at_top:
            yield (node["value"],)
    elif kind == "subexpression":
        first, *rest = children
        after = _first_key(rest[0]) if rest else None
        for keys in _reads(first, at_top):
            yield (*keys, after) if after is not None and len(keys) == 1 else keys
        for child in rest:
            yield from _reads(child, False)
    elif kind in _LEFT_AT_INPUT:
        yield from _reads(children[0], at_top)
        for child in children[1:]:
            yield from _reads(child, False)
    elif kind in _ALL_AT_INPUT:
        for child in children:
            yield from _reads(child, at_top)
    else:  # an expref (&expr: per element), literals, @, indexes
        for child in children:
            if isinstance(child, dict):
                yield from _reads(child, False)


def _first_key(node: dict[str, Any]) -> str | None:
    if node.get("type") == "field":
        return str(node["value"])
    if node.get("type") in ("subexpression", "flatten", *_LEFT_AT_INPUT[:-1]):
        return _first_key(node["children"][0])
    return None


def _quoted_values(node: dict[str, Any], quoted: set[str]) -> Iterator[str]:
    """Double-quoted fields where a text was likely meant, anywhere in the tree."""
    kind, children = node.get("type"), node.get("children", [])

    def bare(child: Any) -> bool:
        return isinstance(child, dict) and child.get("type") == "field" and (
            child["value"] in quoted)

    if kind == "comparator":
        for mine, other in ((children[0], children[1]), (children[1], children[0])):
            if bare(mine) and other.get("type") != "literal":
                yield mine["value"]
    elif kind == "function_expression" and node["value"] in _TEXT_FUNCTIONS and (
            len(children) > 1 and bare(children[1])):
        yield children[1]["value"]
    for child in children:
        if isinstance(child, dict):
            yield from _quoted_values(child, quoted)
