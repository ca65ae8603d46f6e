"""The playground's API: POST /api/playground tries a mapping's text on a body (trial.py, in
a bounded child: sandbox.py); POST /api/playground/save writes it to the mappings folder,
only when RELAY_PLAYGROUND_WRITE is on.

Think of the caller as a hostile logged-in user: the text is bounded in size (413), its YAML
in depth and alias expansion (yamlfile.py: a problem at its line), its evaluation in time and
memory (the sandbox: 400 or 413); ${NAME} never reads the environment (trial.py says what
does); a saved name is a valid endpoint name, written inside the folder, atomically.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from flask import jsonify, request

from relay.mapping.load import ENV_REFERENCE, is_secret
from relay.mapping.schedule import LAST_TIME
from relay.mapping.yamlfile import parse_yaml
from relay.sources.endpoint import valid_name
from relay.sources.folder import find_file, write_atomically
from relay.web import sandbox, trial
from relay.web.api import _json_body, _object, api
from relay.web.errors import json_error
from relay.web.services import services

MAX_YAML = 64 * 1024  # characters of a mapping's text; the largest example is 3 KB
MAX_HEADERS = 100
NEW_NAME = "playground"  # the name a mapping without one is tried under
_EXAMPLE = ('{"name": "leads", "yaml": text, "body": text, "headers": {}, "query": {}, '
            '"now": 1796292000}')
_KEYS = ("name", "yaml", "body", "headers", "query", "now")


def read_spec() -> tuple[dict[str, Any] | None, Any]:
    """The request's {name, yaml, body, headers, query, now}, checked: (spec, None) or (None,
    an error answer)."""
    # The web server reads no request past RELAY_MAX_BODY (bridge.py): the YAML and the
    # body, as JSON, are one request, so that is this one's limit too.
    limit = services().settings.max_body
    request.max_content_length = limit  # a chunked body too is cut off there (413)
    if request.content_length is not None and request.content_length > limit:
        return None, json_error(413, f"send at most {limit} bytes (RELAY_MAX_BODY)",
                                f"the YAML ({MAX_YAML} characters at most) and the body, "
                                "together as JSON, are one request")
    spec = _json_body()
    problem = _object(spec, _KEYS)
    if problem:
        return None, json_error(400, problem, f"send {_EXAMPLE}")
    for key in ("name", "yaml", "body"):
        if not isinstance(spec.get(key, ""), str):
            return None, json_error(400, f"{key} must be a string", f"send {_EXAMPLE}")
    for key in ("headers", "query"):
        value = spec.get(key, {})
        if not (isinstance(value, dict) and len(value) <= MAX_HEADERS
                and all(isinstance(v, str) for v in value.values())):
            return None, json_error(400, f"{key} must be an object of at most {MAX_HEADERS} "
                                    "strings", 'e.g. "headers": {"Content-Type": "text/xml"}')
    now = spec.get("now")
    if now is not None and (isinstance(now, bool) or not isinstance(now, int | float)
                            or not 0 < now < LAST_TIME):
        return None, json_error(400, "now must be UNIX seconds (a number above 0, before the "
                                "year 3000), or left out for the current time",
                                'e.g. "now": 1796292000 for 2026-12-03T10:00:00Z')
    name = spec.get("name") or NEW_NAME
    body = spec.get("body", "").encode("utf-8", "replace").decode()
    wrong = too_much(name, spec.get("yaml", ""), body)
    if wrong:
        return None, json_error(*wrong)
    return {"name": name, "yaml": spec.get("yaml", ""), "body": body,
            "headers": spec.get("headers", {}), "query": spec.get("query", {}),
            "now": None if now is None else float(now)}, None


def too_much(name: str, yaml: str, body: str) -> tuple[int, str, str] | None:
    """Why a name, YAML and body cannot be tried (status, message, hint), the API's and the
    console's form alike; None when they can."""
    if not valid_name(name):
        return 400, f"{name[:100]!r} cannot be a mapping's name", ("use letters, digits, '-', "
                                                                 "'_' and '.' (no '/')")
    if len(yaml) > MAX_YAML:
        return 413, f"the YAML is longer than {MAX_YAML} characters", "a mapping needs far fewer"
    limit = services().settings.max_body
    if len(body.encode()) > limit:
        return 413, f"the body is larger than RELAY_MAX_BODY ({limit} bytes)", (
            "the relay would answer its sender 413 too")
    return None


def try_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """trial.try_mapping on a checked spec, in the sandbox (SandboxError when it fails)."""
    answer: dict[str, Any] = sandbox.run(trial.try_mapping, {
        **spec, "folder": str(Path(services().settings.mappings).resolve()),
        "env": trial.playground_env(os.environ)})
    return answer


@api.post("/playground")
def playground() -> Any:
    spec, error = read_spec()
    if spec is None:
        return error
    try:
        return jsonify(try_spec(spec))
    except sandbox.SandboxError as exc:
        return json_error(exc.status, str(exc), "the text and body are yours to change: "
                          "nothing was sent or saved")


@api.post("/playground/save")
def save() -> Any:
    if not services().settings.playground_write:
        return json_error(403, "the playground may not write mapping files here",
                          "download the YAML and add it to the mappings folder, or set "
                          "RELAY_PLAYGROUND_WRITE=true and restart to allow saving")
    spec, error = read_spec()
    if spec is None:
        return error
    if not spec["yaml"].strip() or not (_json_body() or {}).get("name"):
        return json_error(400, "say the mapping's name and its YAML", f"send {_EXAMPLE}")
    try:
        tried = try_spec(spec)
    except sandbox.SandboxError as exc:
        return json_error(exc.status, str(exc))
    if tried["problems"]:
        first = tried["problems"][0]
        return json_error(400, "the YAML does not load, so it is not saved: "
                          f"line {first['line']}: {first['message']}",
                          "fix every problem the playground lists, then save")
    refused = reaches_out(spec["yaml"], find_file(Path(services().settings.mappings),
                                                  spec["name"]))
    if refused:
        return json_error(403, f"not saved from the playground: {refused}",
                          "make that change in the file itself, where the relay's operator "
                          "decides what the mapping may read and where it calls")
    file = write_mapping(Path(services().settings.mappings), spec["name"], spec["yaml"])
    services().registry.refresh(force=True)
    return jsonify(saved=file.name, mapping=spec["name"],
                   loaded=spec["name"] in services().registry.names(),
                   error=services().registry.broken_error(spec["name"]))


def reaches_out(text: str, current: Path | None) -> str | None:
    """What a saved text would newly take from the relay: a `${NAME}` outside `secret:`,
    `verify_token:` and `lookup.token` (a saved file reads the real environment, so an
    attribute `${ENGATI_API_KEY}` would store and show the key), or other `engati:` or
    `lookup:` settings (a base_url or url elsewhere would send the API key or the token
    there). The file it replaces may keep what it had; None when nothing."""
    new, _, _ = parse_yaml("new", text)
    old, _, _ = (None, None, None) if current is None else parse_yaml(
        "old", current.read_text(encoding="utf-8", errors="replace"))
    old = old if isinstance(old, dict) else {}
    if isinstance(new, dict) and new.get("engati") != old.get("engati"):
        return "it changes the engati: settings"
    if isinstance(new, dict) and new.get("lookup") != old.get("lookup"):
        # The token is sent to the url: another url would take it (or another variable) away.
        return "it changes the lookup: settings"
    had = set(_variables(old))
    for path, name in _variables(new):
        if not is_secret(path) and (path, name) not in had:
            where = ".".join(map(str, path))
            return f"${{{name}}} at {where} would read the relay's environment"
    return None


def _variables(data: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], str]]:
    """Every `${NAME}` in the parsed YAML, with where it is (tests: bodies, never read)."""
    if isinstance(data, dict):
        for key, value in data.items():
            if not (path == () and key == "tests"):
                yield from _variables(value, (*path, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from _variables(value, (*path, index))
    elif isinstance(data, str):
        for match in ENV_REFERENCE.finditer(data):
            if match.group(1):
                yield path, match.group(1)


def write_mapping(folder: Path, name: str, text: str) -> Path:
    """Write `text` as the mapping `name` (its existing file, .yaml or .yml, else
    NAME.yaml) atomically: a reader sees the old file or the new one, never half of it."""
    if not valid_name(name):
        raise ValueError(f"not a mapping name: {name!r}")
    folder = folder.resolve()
    file = find_file(folder, name) or folder / f"{name}.yaml"
    if file.resolve().parent != folder:  # a symlink pointing out of the folder
        file = folder / f"{name}.yaml"
    write_atomically(file, text.encode("utf-8"))
    return file
