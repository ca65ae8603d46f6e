"""Commands for mapping files: check, preview, send, schema."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import click
import httpx

from relay.cli.group import Failed
from relay.config import Settings
from relay.delivery.request import build_request
from relay.errors import MappingLoadError, RelayError
from relay.mapping import Result, unset_engati
from relay.mapping.load import schema
from relay.mapping.model import iso_utc
from relay.mapping.schedule import ScheduleError
from relay.sources import (
    Endpoint,
    Inbound,
    evaluate_answered,
    evaluate_raw,
    load_endpoint,
    mapping_files,
)
from relay.sources.body import content_type_for
from relay.sources.folder import find_file, unique
from relay.sources.selftest import arrival, cancel_text, run_tests, when_text
from relay.sources.status import BROKEN, state_of


@click.command("schema")
def schema_command() -> None:
    """Print the JSON Schema of mapping files (for editors' YAML language servers)."""
    click.echo(json.dumps(schema(), indent=2))


@click.command()
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option("--strict", is_flag=True, help="Fail (exit 1) on warnings too.")
def check(paths: tuple[Path, ...], strict: bool) -> None:
    """Validate mappings and run their tests (default: the mappings folder).

    Each file's state (ok, broken, locked, unconfigured: as /readyz and the console's
    Mappings page say it), then warnings (suspicious expressions, unverified senders), then
    its tests. Exit 1 when a file is broken or a test fails; warnings alone exit 0.
    """
    files = _mapping_files(paths or (Path(Settings.from_env().mappings),))
    if not files:
        raise RelayError("no mapping files (*.yaml) found")
    failed = tests = passed = warned = 0
    loaded: list[tuple[Path, Endpoint | MappingLoadError]] = []
    for file in files:
        try:
            loaded.append((file, load_endpoint(file)))
        except MappingLoadError as exc:
            loaded.append((file, exc))
    by_name, duplicates = unique(e for _, e in loaded if isinstance(e, Endpoint))
    later = iter(duplicates)  # in the order of the files that claim a name already served
    for file, mapping in loaded:
        click.echo(str(file))
        if isinstance(mapping, Endpoint) and by_name[mapping.name] is not mapping:
            duplicate = next(later)
            click.echo(f"  state {state_of(file, duplicate).state}")
            failed += 1
            click.echo(f"  FAIL {duplicate.message}")
            continue
        state = state_of(file, mapping)
        click.echo(f"  state {state.state}" + (f": {state.detail}" if state.detail
                                                 and state.state != BROKEN else ""))
        if isinstance(mapping, MappingLoadError):
            failed += 1
            for problem in mapping.problems:
                click.echo(f"  FAIL {problem}")
            continue
        for warning in _warnings(mapping, set(by_name)):
            warned += 1
            click.echo(f"  warn {warning}")
        for outcome in run_tests(mapping):
            tests += 1
            passed += outcome.passed
            click.echo(f"  {'ok  ' if outcome.passed else 'FAIL'} {outcome.name}")
            for line in outcome.failures:
                click.echo(f"         {line}")
    failed += tests - passed
    click.echo(
        f"{len(files)} mapping file(s), {tests} test(s): {passed} passed, "
        f"{tests - passed} failed" + (", load errors above" if failed > tests - passed else "")
        + (f", {warned} warning(s)" if warned else "")
    )
    if failed or (strict and warned):
        raise Failed()


@click.command()
@click.argument("mapping")
@click.argument("body", type=click.File("rb"))
@click.option("-H", "--header", "headers", multiple=True, metavar="'Name: value'",
              help="A request header, as curl takes it. Repeatable.")
@click.option("-q", "--query", "query", multiple=True, metavar="key=value",
              help="A query parameter of the webhook URL. Repeatable.")
@click.option("--lookup", "answer", type=click.File("rb"), metavar="ANSWER.json",
              help="For a mapping with lookup: the answer its fetch would get.")
@click.option("--now", "arrived", metavar="TIME",
              help="Preview as if the webhook arrived at TIME: ISO 8601 (UTC unless it names "
                   "a zone) or epoch seconds [default: now].")
def preview(mapping: str, body: Any, headers: tuple[str, ...], query: tuple[str, ...],
            answer: Any, arrived: str | None) -> None:
    """Print the Engati request(s) a webhook BODY would trigger; nothing is sent.

    MAPPING is a mapping file or an endpoint name in the mappings folder; BODY is a file,
    or - for standard input. The API key is masked. A mapping with lookup: fetches first:
    give --lookup with the answer to see what it maps to. When each request would be sent
    (schedule:, quiet_hours:) and what the webhook cancels (cancel:) go to standard error.
    """
    try:
        now = time.time() if arrived is None else arrival(arrived)
    except ScheduleError as exc:
        raise click.BadParameter(str(exc), param_hint="--now") from None
    loaded = load_endpoint(_find_mapping(mapping))
    header_map, query_map = _request_options(body, headers, query)
    raw = body.read()
    if answer is not None:
        try:
            fetched = json.loads(answer.read())
        except ValueError:
            raise RelayError(f"--lookup {answer.name} is not JSON") from None
        result = evaluate_answered(loaded, raw, header_map, query_map, fetched, now)
    else:
        result = evaluate_raw(loaded, raw, header_map, query_map, now)
    for fetch in result.lookups:
        click.echo(f"lookup: GET {fetch.url} first (the worker fetches it; --lookup ANSWER.json "
                   "shows what its answer maps to)", err=True)
    for error in result.errors:
        click.echo(f"error: {error}", err=True)
    if result.status == "failed":
        raise Failed()
    if result.status == "skipped":
        click.echo(f"skipped: {result.skipped}; nothing would be sent", err=True)
    for line in timing_lines(result, loaded.name, now, arrived is not None):
        click.echo(line, err=True)
    if unset := unset_engati(loaded.mapping):
        click.echo(f"warn: {unset}", err=True)
    requests = [build_request(loaded.mapping.engati, d, mask=True) for d in result.deliveries]
    click.echo(json.dumps(requests, indent=2, ensure_ascii=False))


def timing_lines(result: Result, name: str, now: float, told: bool) -> list[str]:
    """What a preview of mapping `name` says of time: when each request would be sent and
    why, what the webhook cancels, and (`told`: --now was given) the arrival time assumed."""
    lines = [f"arrival: {iso_utc(now)} (--now)"] if told else []
    if result.status == "planned" and result.skipped and not result.deliveries:
        why = "the filter was false" if result.skipped == "filter" else result.skipped
        lines.append(f"no request: {why}")
    lines += [f"request {n}: {when_text(d, now)}" for n, d in enumerate(result.deliveries, 1)]
    lines += [cancel_text(cancel, name) for cancel in result.cancels]
    return lines



@click.command()
@click.argument("mapping")
@click.argument("body", type=click.File("rb"))
@click.option("--url", help="Where to post [default: http://127.0.0.1:$PORT/hooks/<mapping>].")
@click.option("-H", "--header", "headers", multiple=True, metavar="'Name: value'",
              help="An extra request header. Repeatable.")
@click.option("-q", "--query", "query", multiple=True, metavar="key=value",
              help="A query parameter to add to the URL. Repeatable.")
def send(mapping: str, body: Any, url: str | None, headers: tuple[str, ...],
         query: tuple[str, ...]) -> None:
    """Sign BODY as MAPPING's sender would and post it to a running relay.

    Uses the mapping's secret (from the environment), so you can test an endpoint without the
    real provider. Prints the relay's answer; exits 1 unless it is a 2xx.
    """
    loaded = load_endpoint(_find_mapping(mapping))
    if loaded.locked:
        raise RelayError(f"cannot sign as {loaded.preset.name}: {loaded.locked}")
    raw = body.read()
    header_map, query_map = _request_options(body, headers, query)
    port = Settings.from_env().port
    target = url or f"http://127.0.0.1:{port}/hooks/{loaded.name}"
    if query_map:
        target += ("&" if "?" in target else "?") + urlencode(query_map)
    if loaded.preset.verifies(loaded) and loaded.secrets:  # Salesforce, say, signs nothing
        raw = loaded.preset.sign_body(loaded.secrets[0], loaded, raw)  # Google Ads' key
        inbound = Inbound(raw, {k.lower(): v for k, v in header_map.items()}, query_map,
                          "POST", target)
        signed, extra = loaded.preset.sign(loaded.secrets[0], loaded, inbound, time.time())
        header_map.update(signed)
        if extra:
            target += ("&" if "?" in target else "?") + urlencode(extra)
    try:
        response = httpx.post(target, content=raw, headers=header_map, timeout=30)
    except httpx.HTTPError as exc:
        raise RelayError(f"could not reach {target}: {exc}") from None
    click.echo(f"HTTP {response.status_code}", err=True)
    click.echo(response.text)
    if not response.is_success:
        raise Failed()


def _request_options(body: Any, headers: tuple[str, ...],
                     query: tuple[str, ...]) -> tuple[dict[str, str], dict[str, str]]:
    """-H and -q options as dicts; Content-Type guessed from the body file's suffix, and
    JSON for standard input (say another with -H)."""
    header_map = dict(_split(h, ":", "-H", "'Name: value'") for h in headers)
    name = getattr(body, "name", None)
    guessed = content_type_for(name) if isinstance(name, str) and name != "<stdin>" else (
        "application/json")
    if guessed and not any(k.lower() == "content-type" for k in header_map):
        header_map["Content-Type"] = guessed
    return header_map, dict(_split(q, "=", "-q", "key=value") for q in query)


def _mapping_files(paths: tuple[Path, ...]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += mapping_files(path)
        else:
            files.append(path)
    return files


def _find_mapping(name: str) -> Path:
    path = Path(name)
    if path.is_file():
        return path
    folder = Path(Settings.from_env().mappings)
    if found := find_file(folder, name):
        return found
    raise click.BadParameter(f"no file {name!r} and no mapping {name!r} in {folder}/",
                             param_hint="MAPPING")


def _split(text: str, sep: str, option: str, form: str) -> tuple[str, str]:
    key, found, value = text.partition(sep)
    if not found or not key.strip():
        raise click.BadParameter(f"{text!r} is not {form}", param_hint=option)
    return key.strip(), value.strip() if sep == ":" else value


def _warnings(endpoint: Endpoint, names: set[str]) -> list[str]:
    """What `check` warns of beyond the state line: the static checks of the expressions
    (file:line: key: message), what `cancel:` names that is not checked (`names`: the
    mappings checked together), then how the sender is verified and whether there are
    tests."""
    warnings = [str(problem) for problem in endpoint.mapping.warnings]
    cancel = endpoint.mapping.cancel
    if cancel is not None:
        unknown = sorted(set(cancel.mappings) - names)
        if unknown:
            warnings.append(f"cancel.mappings names {', '.join(unknown)}, not among the "
                            "mappings checked: a misspelt name cancels nothing")
        if not endpoint.preset.verifies(endpoint) or endpoint.verify is False:
            warnings.append("cancel: on an endpoint that verifies no sender: anyone who "
                            "knows the URL and a key can cancel deliveries")
    capped = ("; it stores at most RELAY_UNVERIFIED_LIMIT webhooks a minute per web process "
              "(429 above)")
    if endpoint.verify is False:
        warnings.append("verification is off (verify: false): anyone who knows the URL can "
                        "post" + capped)
    elif not endpoint.preset.verifies(endpoint):
        warnings.append("nothing verifies the sender: anyone who knows the URL can post "
                        "(see `verify:` in docs/sources.md)" + capped)
    if not endpoint.mapping.tests:
        warnings.append("no tests: add examples under `tests:` so changes can be checked")
    return warnings
