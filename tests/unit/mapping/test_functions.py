"""The custom JMESPath functions: each does one thing and passes null through."""

from __future__ import annotations

import jmespath
import pytest
from jmespath.exceptions import JMESPathError

from relay.mapping.functions import OPTIONS


def search(expression, data=None):
    return jmespath.search(expression, data or {}, options=OPTIONS)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("lower('VIP Lead')", "vip lead"),
        ("upper('vip')", "VIP"),
        ("title('asha rao')", "Asha Rao"),
        ("trim('  Asha  ')", "Asha"),
        ("split('a,b,c', ',')", ["a", "b", "c"]),
        ("split('Asha  Rao', '')", ["Asha", "Rao"]),
        ("replace('98-12-34', '-', '')", "981234"),
        ("regex_replace('Order #A-17', '[^0-9]', '')", "17"),
        ("matches('priya@example.com', '@example\\.com$')", True),
        ("matches(`null`, 'x')", False),
        ("extract('Phone: +91 98123 45678.', 'Phone:\\s*([+\\d][\\d ()-]+\\d)')",
         "+91 98123 45678"),
        ("extract('order A-17', '[0-9]+')", "17"),
        ("extract('no digits', '[0-9]+')", None),
        ("digits('+91 (981) 234-5678')", "919812345678"),
        ("digits(`9812345678`)", "9812345678"),
        ("concat('Asha', ' ', 'Rao')", "Asha Rao"),
        ("concat('Order ', `17`, ' paid: ', `true`)", "Order 17 paid: true"),
        ("concat('Asha', ' ', `null`)", "Asha "),
        ("from_json('{\"a\": [1, 2]}').a[1]", 2),
        ("from_json('')", None),
    ],
)
def test_functions(expression, expected):
    """Each function gives the documented result."""
    assert search(expression) == expected


@pytest.mark.parametrize("name", ["lower", "upper", "title", "trim", "digits", "from_json"])
def test_null_passes_through(name):
    """A missing field stays missing instead of failing the webhook."""
    assert search(f"{name}(missing)") is None


def test_from_json_rejects_invalid_json():
    """Invalid JSON inside a string is an error that says so."""
    with pytest.raises(JMESPathError, match="not valid JSON"):
        search("from_json('{oops')")


def test_invalid_regex_is_an_error():
    """A broken regular expression names the pattern."""
    with pytest.raises(JMESPathError, match="invalid regular expression"):
        search("matches('a', '(')")


def test_builtins_still_work():
    """JMESPath's own functions are still there."""
    assert search("join('-', ['a', 'b'])") == "a-b"


@pytest.mark.parametrize(("expression", "data"), [
    ("contains(a, `1`)", {"a": "order 1"}),  # text searched for a number: Python's `in`
    ("max_by(a, &p)", {"a": [{"p": 1}, {"p": "2"}]}),  # a price sent as text in one item
    ("min_by(a, &p)", {"a": [{"p": "2"}, {"p": 1}]}),
    ("merge(a, b)", {"a": {}, "b": 2}),  # arguments after the first are not type-checked
    ("ceil(to_number(a))", {"a": "1.0e999"}),  # infinity
    ("floor(a)", {"a": float("nan")}),  # as Jotform's rawRequest may hold (json.loads)
    ("from_json(a)", {"a": "[" * 100_000}),  # deeper than the JSON decoder may recurse
    ("matches(a, b)", {"a": "x", "b": "x{99999999999}"}),  # a pattern the sender chose
    ("extract(a, b)", {"a": "x", "b": "(" * 5000 + ")" * 5000}),
    ("regex_replace(a, '(x)', b)", {"a": "x", "b": "\\2"}),  # no group 2 to put back
])
def test_a_value_a_function_cannot_take_is_a_jmespath_error(expression, data):
    """A function given what it cannot work with raises a JMESPathError, which fails the
    field it maps, never a Python error that reached the sender as a 500."""
    with pytest.raises(JMESPathError, match=expression.split("(")[0] + r"\(\)"):
        search(expression, data)
