"""YAML with line numbers, and problems located on them.

PyYAML's node tree keeps where every key and value starts; `Report` turns a key path such as
("flows", 0, "when") into `file:line: flows[0].when: message`.
"""

from __future__ import annotations

import difflib
from datetime import date
from typing import Any

import yaml
from jsonschema.exceptions import ValidationError, best_match

from relay.errors import MappingLoadError, Problem

Path_ = tuple[str | int, ...]
# A mapping is a few dozen keys. These bound what a YAML text may make the loader build, so
# that text from anyone (the console's playground) costs time and memory in proportion to its
# length: aliases that expand exponentially (a "billion laughs"), an alias inside its own
# anchor (a cycle), and nesting deep enough to exhaust the stack are refused before any
# object is built.
MAX_DEPTH = 50  # levels of nested lists and objects
MAX_VALUES = 100_000  # scalars, lists and objects, every alias counted as what it repeats


def parse_yaml(where: str, text: str) -> tuple[Any, dict[Path_, int], list[Problem]]:
    bound = _bounds(text)
    if bound is not None:
        return None, {}, [bound.problem(where)]
    try:
        loader = yaml.SafeLoader(text)  # the reader refuses unprintable characters here
    except yaml.YAMLError as exc:
        return None, {}, [Problem(where, _reader_line(exc, text), "", f"invalid YAML: {exc}")]
    try:
        node = loader.get_single_node()
        if node is None:
            return None, {}, [Problem(where, None, "", "the file is empty")]
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        message = f"invalid YAML: {exc.problem or exc}"
        return None, {}, [Problem(where, line, "", message)]
    except yaml.YAMLError as exc:
        return None, {}, [Problem(where, _reader_line(exc, text), "", f"invalid YAML: {exc}")]
    except (ValueError, OverflowError) as exc:  # a scalar PyYAML resolves but cannot build:
        # 2026-02-30 as a date, an integer of more than 4300 digits
        line = _unbuildable_line(loader, node)
        return None, {}, [Problem(where, line, "", f"invalid YAML: a value cannot be read "
                                  f"({exc}); quote it to keep it as text")]
    finally:
        loader.dispose()
    lines: dict[Path_, int] = {}
    problems: list[Problem] = []
    _index_lines(node, (), lines, problems, where)
    if not isinstance(data, dict):
        problems.append(Problem(where, 1, "", "a mapping file is a YAML object of keys"))
        return None, lines, problems
    return data, lines, problems


def _unbuildable_line(loader: yaml.SafeLoader, root: yaml.Node) -> int | None:
    """The line of the first scalar under `root` that its tag's constructor refuses."""
    stack = [root]
    while stack:
        node = stack.pop()
        if isinstance(node, yaml.ScalarNode):
            build = loader.yaml_constructors.get(node.tag)
            try:
                if build is not None:
                    build(loader, node)
            except (ValueError, OverflowError):
                return int(node.start_mark.line) + 1
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(reversed(node.value))
        elif isinstance(node, yaml.MappingNode):
            stack.extend(item for pair in reversed(node.value) for item in reversed(pair))
    return None


class _Bound(Exception):
    def __init__(self, line: int | None, message: str):
        self.line, self.message = line, message

    def problem(self, where: str) -> Problem:
        return Problem(where, self.line, "", self.message)


def _bounds(text: str) -> _Bound | None:
    """Why the YAML is too deep, too large once its aliases are expanded, or cyclic (None
    when it is none of these), found from the parser's events: no recursion, no objects."""
    sizes: dict[str, int] = {}  # anchor -> values its node stands for
    open_: list[tuple[str | None, int]] = []  # the collections being read: anchor, values
    total = 0
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            line = event.start_mark.line + 1 if event.start_mark else None
            if isinstance(event, yaml.AliasEvent):
                if event.anchor not in sizes:
                    if any(anchor == event.anchor for anchor, _ in open_):
                        raise _Bound(line, f"invalid YAML: the alias *{event.anchor} is inside "
                                     "its own anchor (a cycle)")
                    continue  # an undefined alias: the loader says so, with its line
                count = sizes[event.anchor]
            elif isinstance(event, yaml.CollectionStartEvent):
                open_.append((event.anchor, 1))
                if len(open_) > MAX_DEPTH:
                    raise _Bound(line, f"the YAML nests deeper than {MAX_DEPTH} levels")
                continue
            elif isinstance(event, yaml.CollectionEndEvent):
                anchor, count = open_.pop()
                if anchor is not None:
                    sizes[anchor] = count
            elif isinstance(event, yaml.ScalarEvent):
                count = 1
                if event.anchor is not None:
                    sizes[event.anchor] = 1
            else:
                continue
            total += count
            if open_:
                anchor, inside = open_[-1]
                open_[-1] = (anchor, inside + count)
            if total > MAX_VALUES or (open_ and open_[-1][1] > MAX_VALUES):
                raise _Bound(line, f"the YAML stands for more than {MAX_VALUES} values once "
                             "its aliases are expanded; a mapping needs far fewer")
    except _Bound as exc:
        return exc
    except yaml.YAMLError:
        return None  # the loader reports it, with its line
    return None


def _reader_line(exc: yaml.YAMLError, text: str) -> int | None:
    """The line of a character the YAML reader refuses (its error has only an offset)."""
    position = getattr(exc, "position", None)
    return None if position is None else text.count("\n", 0, position) + 1


def _index_lines(node: yaml.Node, path: Path_, lines: dict[Path_, int], problems: list[Problem],
                 where: str) -> None:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = key_node.value
            if key in seen:
                problems.append(Problem(where, key_node.start_mark.line + 1, _dotted((*path, key)),
                                        "the key appears twice; the later one would win"))
            seen.add(key)
            lines[(*path, key)] = key_node.start_mark.line + 1
            _index_lines(value_node, (*path, key), lines, problems, where)
    elif isinstance(node, yaml.SequenceNode):
        for index, child in enumerate(node.value):
            _index_lines(child, (*path, index), lines, problems, where)


def _dotted(path: Path_) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


class Report:
    """Collects problems of one file, locating each key path on its line."""

    def __init__(self, where: str, lines: dict[Path_, int], problems: list[Problem]):
        self.where, self.lines, self.problems = where, lines, problems
        # ${NAME}s of `secret:` that are not set: they lock the endpoint rather than fail the
        # file (relay/sources/endpoint.py), so that the other endpoints can start.
        self.unset_secrets: list[str] = []

    def add(self, path: Path_, message: str) -> None:
        line = None
        for end in range(len(path), -1, -1):
            line = self.lines.get(tuple(path[:end]))
            if line:
                break
        self.problems.append(Problem(self.where, line, _dotted(path), message))

    def raise_problems(self) -> None:
        """Raise MappingLoadError with every problem, by line, if there is any."""
        if self.problems:
            raise MappingLoadError(sorted(self.problems, key=lambda p: p.line or 0))


def report_schema_error(report: Report, error: ValidationError) -> None:
    if error.context:
        # anyOf: explain the alternative meant for this kind of value (an object's mistakes,
        # not "is not a string"), else the one that came closest.
        meant = [e for e in error.context if not (e.validator == "type" and not e.path)]
        error = best_match(meant or error.context)
    path = tuple(error.absolute_path)
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        for key in sorted(set(error.instance) - set(allowed)):
            guess = difflib.get_close_matches(key, allowed, n=1)
            hint = f"did you mean {guess[0]!r}?" if guess else "expected one of " + ", ".join(
                allowed)
            report.add((*path, key), f"unknown key; {hint}")
        return
    message = error.message
    if error.validator in ("type", "pattern", "enum") and isinstance(error.instance, bool):
        message += " (YAML reads yes/no/on/off/NO as booleans: put the value in quotes)"
    elif error.validator == "type" and isinstance(error.instance, date):
        message += (" (YAML reads an unquoted 2026-12-03 or 2026-12-03T10:00:00Z as a date: "
                    "put the value in quotes)")
    elif error.validator == "required":
        message = message.replace("is a required property", "is required here")
    report.add(path, message)
