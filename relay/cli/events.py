"""Commands for operators: list events, show one, replay what failed, send a scheduled
delivery now or cancel it."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import click

from relay.cli.group import Failed
from relay.config import Settings, parse_duration, parse_since
from relay.errors import RelayError
from relay.model import DeliveryStatus
from relay.sources import load_folder
from relay.store import STATUSES, Store, open_store
from relay.store.base import SCHEDULED
from relay.store.display import (
    event_problem,
    event_state,
    is_scheduled,
    pretty_body,
    schedule_text,
    shown_state,
    utc_text,
    why_not,
)
from relay.store.replay import replay_event
from relay.store.search import search_args


def _store() -> Store:
    settings = Settings.from_env()
    return open_store(settings.database_url, timeout=settings.db_timeout)


@click.command()
@click.option("--status", type=click.Choice(STATUSES),
              help="accepted/skipped/failed as received; pending/delivered/dead/cancelled by "
                   "deliveries; scheduled: with a delivery due later, never tried.")
@click.option("--mapping", help="Only this mapping's events.")
@click.option("--phone", help="With a delivery to this phone, in any format (+91 98220 12345, "
                              "or 09822012345 in a mapping's region); a few digits: phones "
                              "that hold them.")
@click.option("--search", "-q", "text", metavar="TEXT",
              help="With this text in the body (3 or more characters, any case).")
@click.option("--since", help="Received since: 24h, 7d, 30m or a date like 2026-11-01.")
@click.option("--limit", type=int, default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True,
              help="One JSON object per line (JSON Lines), newest first.")
def events(status: str | None, mapping: str | None, phone: str | None, text: str | None,
           since: str | None, limit: int, as_json: bool) -> None:
    """List recent events, newest first."""
    try:
        start = None if since is None else parse_since(since, time.time(), "--since")
    except RelayError as exc:
        raise click.BadParameter(str(exc), param_hint="--since") from None
    settings = Settings.from_env()
    try:
        search = search_args(phone, text, _regions(settings, mapping) if phone else [])
    except RelayError as exc:
        raise click.BadParameter(str(exc), param_hint="--search") from None
    store = open_store(settings.database_url, timeout=settings.db_timeout)
    rows = store.events(status=status, mapping=mapping, since=start, limit=limit,
                        now=time.time(), **search)
    if as_json:
        for row in rows:
            click.echo(json.dumps({**row, "state": event_state(row)}, ensure_ascii=False,
                                  default=str))
        return
    if not rows:
        click.echo("no events")
        return
    click.echo(f"{'ID':>8}  {'MAPPING':<20} {'RECEIVED (UTC)':<19}  {'STATUS':<9} "
               f"{'DELIVERED':<9}  NOTE")
    for row in rows:
        click.echo(f"{row['id']:>8}  {row['mapping'][:20]:<20} {utc_text(row['received_at'])}  "
                   f"{event_state(row):<9} {_delivered(row):<9}  {_note(row)}".rstrip())


def _regions(settings: Settings, mapping: str | None) -> list[str | None]:
    """The regions a typed phone is read in: the mapping's, else every mapping's in the
    folder (none when the folder does not load: then a number needs its country code)."""
    try:
        endpoints = load_folder(settings.mappings)
    except RelayError:
        return []
    return [e.mapping.phone.region for name, e in endpoints.items()
            if (mapping is None or name == mapping) and e.mapping.phone is not None]


@click.command()
@click.argument("event_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="Print everything as JSON.")
def show(event_id: int, as_json: bool) -> None:
    """Show an event: body, headers, the mapping result, deliveries and every attempt."""
    event = _store().event(event_id)
    if event is None:
        raise RelayError(f"no event {event_id}")
    body = pretty_body(event["body"])
    event["body"] = event["body"].decode("utf-8", "replace")
    if as_json:
        click.echo(json.dumps(event, indent=2, ensure_ascii=False, default=str))
        return
    click.echo(f"event {event['id']}  mapping {event['mapping']}  received "
               f"{utc_text(event['received_at'])} UTC  status {shown_state(event, time.time())}")
    if event["note"]:
        click.echo(f"skipped: {event['note']}")
    for error in event["errors"] or ():
        click.echo(f"error: {error['field']}: {error['message']}")
    click.echo("headers: " + json.dumps(event["headers"], ensure_ascii=False))
    if event["query"]:
        click.echo("query: " + json.dumps(event["query"], ensure_ascii=False))
    click.echo("body:\n" + body)
    for x in event["lookups"]:
        click.echo(f"lookup {x['id']}: GET {x['url']} -> {x['status']} after "
                   f"{len(x['tries'])} attempt(s)")
        if x["status"] == "pending" and x["attempts"]:
            click.echo(f"  next attempt at {utc_text(x['next_at'])} UTC")
        for t in x["tries"]:
            click.echo(f"  {utc_text(t['at'])} UTC  http {t['http'] or '-'}  {t['ms']:.0f} ms"
                       + (f"  {t['error']}" if t["error"] else ""))
    now = time.time()
    for d in event["deliveries"]:
        status = SCHEDULED if is_scheduled(d, now) else d["status"]
        click.echo(f"delivery {d['id']}: flow {d['flow_key']} {d['channel']} {d['phone']} "
                   f"-> {status} after {len(d['attempt_log'])} attempt(s)")
        click.echo("  attributes: " + json.dumps(d["attributes"], ensure_ascii=False))
        schedule = schedule_text(d, now)
        if schedule:
            click.echo(f"  {schedule}")
        if d["cancel_key"] is not None:
            click.echo(f"  cancel key: {d['cancel_key']}")
        if d["status"] == DeliveryStatus.CANCELLED:
            click.echo(f"  {d['last_error'] or 'cancelled'}")
        elif d["status"] == DeliveryStatus.PENDING and status != SCHEDULED:
            click.echo(f"  next attempt at {utc_text(d['next_at'])} UTC")
        for a in d["attempt_log"]:
            answer = " ".join(filter(None, [
                a["http_status"] and f"HTTP {a['http_status']}",
                a["engati_code"] and f"code {a['engati_code']}"])) or "no answer"
            click.echo(f"  {utc_text(a['started_at'])}  {a['outcome']:<9} {answer:<20} "
                       f"{a['duration_ms']:.0f} ms  {a['error'] or ''}".rstrip())


@click.command()
@click.argument("event_ids", nargs=-1, type=int)
@click.option("--dead", is_flag=True, help="Every event with a dead delivery.")
@click.option("--failed", is_flag=True, help="Every event whose mapping failed (422).")
@click.option("--mapping", help="With --dead/--failed: only this mapping's events.")
@click.option("--since", help="With --dead/--failed: received since, e.g. 24h, 7d or 2026-11-01.")
def replay(event_ids: tuple[int, ...], dead: bool, failed: bool, mapping: str | None,
           since: str | None) -> None:
    """Map events again with the current mapping and queue what is not yet delivered.

    A delivery that already succeeded is never sent again.
    """
    if bool(event_ids) == (dead or failed):
        raise click.UsageError("give EVENT_IDs, or --dead and/or --failed")
    if (mapping or since) and not (dead or failed):
        raise click.UsageError("--mapping and --since go with --dead or --failed")
    settings = Settings.from_env()
    store = open_store(settings.database_url, timeout=settings.db_timeout)
    try:
        start = None if since is None else parse_since(since, time.time(), "--since")
    except RelayError as exc:
        raise click.BadParameter(str(exc), param_hint="--since") from None
    ids = list(event_ids) or store.replayable(dead=dead, failed=failed, mapping=mapping,
                                              since=start)
    mappings = load_folder(settings.mappings)
    problems = 0
    for event_id in ids:
        replayed = replay_event(store, mappings.get, event_id, time.time())
        problems += not replayed.ok
        click.echo(f"event {event_id}: {replayed.message}")
    click.echo(f"{len(ids)} event(s) replayed, {problems} with problems")
    if problems:
        raise Failed()


@click.command()
@click.option("--older-than", "older_than", required=True, metavar="DURATION",
              help="e.g. 30d (0s: every finished event): events received longer ago.")
@click.option("--include-failed", is_flag=True,
              help="Also failed events (422), which are kept for `relay replay --failed`.")
@click.option("--dry-run", is_flag=True, help="Only say how many events would go.")
def purge(older_than: str, include_failed: bool, dry_run: bool) -> None:
    """Delete finished events (and their deliveries and attempts); never pending ones, and
    failed ones only with --include-failed."""
    seconds = parse_duration(older_than, "--older-than", zero=True)
    count = _store().purge(time.time() - seconds, include_failed=include_failed,
                           dry_run=dry_run)
    kept = "" if include_failed else " (failed events kept: --include-failed purges them)"
    verb = "would purge" if dry_run else "purged"
    click.echo(f"{verb} {count} event(s) received more than {older_than} ago{kept}")


@click.command("send-now")
@click.argument("delivery_ids", nargs=-1, type=int, required=True)
def send_now(delivery_ids: tuple[int, ...]) -> None:
    """Send pending deliveries at once, whatever their schedule or quiet hours said (the
    worker calls them at its next claim). DELIVERY_IDs are in `relay show EVENT_ID`."""
    _operate(delivery_ids, lambda store, i: store.send_now(i, time.time()), "due now")


@click.command()
@click.argument("delivery_ids", nargs=-1, type=int, required=True)
def cancel(delivery_ids: tuple[int, ...]) -> None:
    """Cancel pending deliveries: they are never called (`relay show` says "cancelled by an
    operator"). One in flight cannot be: its call is under way."""
    _operate(delivery_ids, lambda store, i: store.cancel_delivery(i, time.time()),
             "cancelled")


def _operate(ids: tuple[int, ...], act: Callable[[Store, int], bool], done: str) -> None:
    """Act on each delivery, saying what became of it; exit 1 when any was not acted on."""
    store = _store()
    refused = 0
    for delivery_id in ids:
        if act(store, delivery_id):
            click.echo(f"delivery {delivery_id}: {done}")
            continue
        refused += 1
        click.echo(f"delivery {delivery_id}: {why_not(store.delivery(delivery_id), time.time())}",
                   err=True)
    if refused:
        click.echo(f"{refused} of {len(ids)} deliveries not changed", err=True)
        raise Failed()


def _delivered(row: dict[str, Any]) -> str:
    return f"{row['delivered'] or 0}/{row['total'] or 0}"


def _note(row: dict[str, Any]) -> str:
    """The scheduled and cancelled deliveries, then what went wrong."""
    parts = []
    if row.get(SCHEDULED):
        parts.append(f"{row[SCHEDULED]} scheduled, the first for "
                     f"{utc_text(row['scheduled_at'])} UTC")
    if row.get(DeliveryStatus.CANCELLED):
        parts.append(f"{row[DeliveryStatus.CANCELLED]} cancelled")
    parts.append(event_problem(row))
    text = "; ".join(filter(None, parts))
    return text if len(text) <= 100 else text[:97] + "..."
