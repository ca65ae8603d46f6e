"""JMESPath expressions compiled once into nested Python functions, to be run per webhook.

jmespath's TreeInterpreter walks the syntax tree on every search, looking up a method per
node; a mapping's dozen expressions cost a web process more CPU than its database work did.
`compile_tree` turns each node into a closure that does what the interpreter's visit_<type>
does, with the node's children and values bound in advance. The semantics are jmespath's own
(jmespath 1.x's visitor.py, read node by node; tests/unit/mapping/test_compiled.py compares
the two on every expression of mappings/ and on generated ones), but for one case: ordering
text against a number (`body.amount > `100`` with "amount": "abc") gives null, as the
JMESPath specification says of ordering what is not comparable, where the interpreter raised
Python's TypeError, a 500 to the sender. A node type this module does not know (a later
jmespath's) runs through the interpreter.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

from jmespath.visitor import (
    TreeInterpreter,
    _equals,
    _Expression,
    _is_actual_number,
    _is_comparable,
)

Run = Callable[[Any], Any]
_ORDERING = {"lt": operator.lt, "gt": operator.gt, "lte": operator.le, "gte": operator.ge}


def compile_tree(node: dict[str, Any], interpreter: TreeInterpreter) -> Run:
    """A function of the data that gives what `interpreter.visit(node, data)` gives."""
    build = _BUILDERS.get(node["type"])
    if build is None:
        return lambda value: interpreter.visit(node, value)
    return build(node, interpreter)


def _false(value: Any) -> bool:
    """JMESPath's falsiness (TreeInterpreter._is_false): 0 is true, '' [] {} null false."""
    return value == "" or value == [] or value == {} or value is None or value is False


def _children(node: dict[str, Any], interpreter: TreeInterpreter) -> list[Run]:
    return [compile_tree(child, interpreter) for child in node["children"]]


def _chain(node: dict[str, Any], interpreter: TreeInterpreter) -> Run:
    """subexpression, index_expression and pipe: each child applied to the last's result.
    A chain of field names (a.b.c) reads the dicts directly."""
    children = node["children"]
    if all(child["type"] == "field" for child in children):
        names = [child["value"] for child in children]

        def fields(value: Any) -> Any:
            try:
                for name in names:
                    value = value.get(name)
            except AttributeError:  # not an object (None included): no such field
                return None
            return value
        return fields
    steps = _children(node, interpreter)
    if len(steps) == 2:
        first, second = steps
        return lambda value: second(first(value))

    def chain(value: Any) -> Any:
        for step in steps:
            value = step(value)
        return value
    return chain


def _field(node: dict[str, Any], _interpreter: TreeInterpreter) -> Run:
    name = node["value"]

    def field(value: Any) -> Any:
        try:
            return value.get(name)
        except AttributeError:
            return None
    return field


def _comparator(node: dict[str, Any], interpreter: TreeInterpreter) -> Run:
    left, right = _children(node, interpreter)
    kind = node["value"]
    texts = [i for i, child in enumerate(node["children"])
             if child["type"] == "literal" and isinstance(child["value"], str | None)]
    if kind in ("eq", "ne") and len(texts) == 1:
        # Against text or null, jmespath's equality is Python's: its special case (0 and 1
        # never equal a boolean) needs a number or a boolean on both sides.
        literal = node["children"][texts[0]]["value"]
        other = (right, left)[texts[0]]
        if kind == "eq":
            return lambda value: other(value) == literal
        return lambda value: other(value) != literal
    if kind == "eq":
        return lambda value: _equals(left(value), right(value))
    if kind == "ne":
        return lambda value: not _equals(left(value), right(value))
    compare = _ORDERING[kind]

    def ordering(value: Any) -> Any:
        a, b = left(value), right(value)
        if not (_is_comparable(a) and _is_comparable(b)) or isinstance(a, str) != isinstance(
                b, str):
            return None  # not both numbers, nor both text
        return compare(a, b)
    return ordering


def _identity(_node: dict[str, Any], _interpreter: TreeInterpreter) -> Run:
    return lambda value: value


def _literal(node: dict[str, Any], _interpreter: TreeInterpreter) -> Run:
    literal = node["value"]
    return lambda _value: literal


def _function(node: dict[str, Any], interpreter: TreeInterpreter) -> Run:
    name, args = node["value"], _children(node, interpreter)
    call = interpreter._functions.call_function
    return lambda value: call(name, [arg(value) for arg in args])


class _Compiled:
    """What an expression reference (`&field`, as sort_by takes) runs through: jmespath's
    functions call `visit` on the interpreter the reference names; here, its compiled body.
    (The reference itself stays jmespath's _Expression: the functions check its type name.)"""

    def __init__(self, node: dict[str, Any], interpreter: TreeInterpreter):
        self.run = compile_tree(node, interpreter)

    def visit(self, _node: dict[str, Any], value: Any) -> Any:
        return self.run(value)


def _expref(node: dict[str, Any], interpreter: TreeInterpreter) -> Run:
    body = node["children"][0]
    reference = _Expression(body, _Compiled(body, interpreter))
    return lambda _value: reference


def _slice(node: dict[str, Any], _interpreter: TreeInterpreter) -> Run:
    part = slice(*node["children"])
    return lambda value: value[part] if isinstance(value, list) else None


def _filter(node: dict[str, Any], interpreter: TreeInterpreter) -> Run:
    base, then, condition = _children(node, interpreter)

    def filter_projection(value: Any) -> Any:
        items = base(value)
        if not isinstance(items, list):
            return None
        collected = []
        for item in items:
            if not _false(condition(item)):
                current = then(item)
                if current is not None:
                    collected.append(current)
        return collected
    return filter_projection


def _projection(node: dict[str, Any], interpreter: TreeInterpreter) -> Run:
    base, then = _children(node, interpreter)

    def projection(value: Any) -> Any:
        items = base(value)
        if not isinstance(items, list):
            return None
        return [current for current in map(then, items) if current is not None]
    return projection


def _values(node: dict[str, Any], interpreter: TreeInterpreter) -> Run:
    base, then = _children(node, interpreter)

    def value_projection(value: Any) -> Any:
        try:
            items = base(value).values()
        except AttributeError:
            return None
        return [current for current in map(then, items) if current is not None]
    return value_projection


def _flatten(node: dict[str, Any], interpreter: TreeInterpreter) -> Run:
    (base,) = _children(node, interpreter)

    def flatten(value: Any) -> Any:
        items = base(value)
        if not isinstance(items, list):
            return None
        merged: list[Any] = []
        for item in items:
            if isinstance(item, list):
                merged.extend(item)
            else:
                merged.append(item)
        return merged
    return flatten


def _index(node: dict[str, Any], _interpreter: TreeInterpreter) -> Run:
    position = node["value"]

    def index(value: Any) -> Any:
        if not isinstance(value, list):
            return None
        try:
            return value[position]
        except IndexError:
            return None
    return index


def _multi_select_dict(node: dict[str, Any], interpreter: TreeInterpreter) -> Run:
    pairs = [(child["value"], compile_tree(child["children"][0], interpreter))
             for child in node["children"]]
    make = interpreter._dict_cls

    def multi_select_dict(value: Any) -> Any:
        if value is None:
            return None
        collected = make()
        for key, run in pairs:
            collected[key] = run(value)
        return collected
    return multi_select_dict


def _multi_select_list(node: dict[str, Any], interpreter: TreeInterpreter) -> Run:
    runs = _children(node, interpreter)
    return lambda value: None if value is None else [run(value) for run in runs]


def _or(node: dict[str, Any], interpreter: TreeInterpreter) -> Run:
    left, right = _children(node, interpreter)

    def either(value: Any) -> Any:
        matched = left(value)
        return right(value) if _false(matched) else matched
    return either


def _and(node: dict[str, Any], interpreter: TreeInterpreter) -> Run:
    left, right = _children(node, interpreter)

    def both(value: Any) -> Any:
        matched = left(value)
        return matched if _false(matched) else right(value)
    return both


def _not(node: dict[str, Any], interpreter: TreeInterpreter) -> Run:
    (inner,) = _children(node, interpreter)

    def negation(value: Any) -> Any:
        result = inner(value)
        if _is_actual_number(result) and result == 0:
            return False  # !0 is false: 0 is not falsy in JMESPath
        return not result
    return negation


_BUILDERS: dict[str, Callable[[dict[str, Any], TreeInterpreter], Run]] = {
    "subexpression": _chain, "index_expression": _chain, "pipe": _chain,
    "field": _field, "comparator": _comparator, "current": _identity,
    "identity": _identity, "literal": _literal, "function_expression": _function,
    "filter_projection": _filter, "projection": _projection, "value_projection": _values,
    "flatten": _flatten,
    "index": _index, "slice": _slice, "expref": _expref, "multi_select_dict": _multi_select_dict,
    "multi_select_list": _multi_select_list, "or_expression": _or,
    "and_expression": _and, "not_expression": _not,
}
