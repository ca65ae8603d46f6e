"""Capture, then draft: `relay capture NAME`, `relay capture samples|show|replay|close|list`,
and `relay draft NAME SAMPLE_ID`.

A capture window on /hooks/NAME keeps what is posted there as samples (whether or not a
mapping NAME exists) and delivers none of it, also when a mapping serves NAME: an integrator
can capture a real request safely, then replay it through the mapping once it is right.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click

from relay.capture.draft import draft, write
from relay.capture.samples import replay_sample
from relay.capture.windows import check_name, open_window
from relay.cli.group import Failed
from relay.config import Settings
from relay.errors import RelayError
from relay.sources.registry import Registry
from relay.store import Store, open_store
from relay.store.display import pretty_body, utc_text


def _store() -> Store:
    settings = Settings.from_env()
    return open_store(settings.database_url, timeout=settings.db_timeout)


def _sample(store: Store, name: str, sample_id: int) -> dict[str, Any]:
    found = store.sample(sample_id)
    if found is None or found["name"] != name:
        raise RelayError(f"no sample {sample_id} of /hooks/{name}: `relay capture samples "
                         f"{name}` lists them")
    return found


class _CaptureGroup(click.Group):
    """`relay capture NAME` opens a window: a first word that is no subcommand is a name."""

    def resolve_command(self, ctx: click.Context, args: list[str]) -> Any:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["open", *args]
        return super().resolve_command(ctx, args)


@click.group("capture", cls=_CaptureGroup)
def capture() -> None:
    """Capture requests to /hooks/NAME as samples: `relay capture NAME [--minutes 15]`.

    While the window is open, requests are stored (capped) and answered as their sender
    expects, and never delivered, also when a mapping NAME exists. Then `relay draft NAME
    SAMPLE_ID` drafts a mapping from one, and `relay capture replay NAME SAMPLE_ID` accepts
    a sample through the mapping as if it had just arrived.
    """


@capture.command("open")
@click.argument("name")
@click.option("--minutes", type=float, default=15, show_default=True,
              help="How long the window stays open (at most a day).")
def open_command(name: str, minutes: float) -> None:
    """Open a capture window for /hooks/NAME (reopening one starts a fresh cap)."""
    settings = Settings.from_env()
    window = open_window(_store(), name, minutes, time.time())
    click.echo(f"capturing /hooks/{name} until {utc_text(window['closes_at'])} UTC (at most "
               f"{settings.capture_samples} samples; none is delivered, also if a mapping "
               f"{name} exists)")
    click.echo(f"then: relay capture samples {name}; relay draft {name} SAMPLE_ID")


@capture.command("close")
@click.argument("name")
def close(name: str) -> None:
    """Close the capture window of /hooks/NAME (its samples stay)."""
    closed = _store().close_window(check_name(name), time.time())
    click.echo(f"closed the window of /hooks/{name}" if closed else
               f"no window of /hooks/{name} was open")


@capture.command("list")
def list_windows() -> None:
    """List the open capture windows."""
    windows = _store().open_windows(time.time())
    if not windows:
        click.echo("no capture window is open")
    for window in windows:
        click.echo(f"{window['name']:<30} until {utc_text(window['closes_at'])} UTC  "
                   f"{window['taken']} sample(s)")


@capture.command("samples")
@click.argument("name")
@click.option("--limit", type=int, default=50, show_default=True)
def samples(name: str, limit: int) -> None:
    """List the samples captured for /hooks/NAME, newest first."""
    rows = _store().samples(check_name(name), limit)
    if not rows:
        click.echo(f"no samples of /hooks/{name}")
        return
    click.echo(f"{'ID':>8}  {'RECEIVED (UTC)':<19}  {'SIGNATURE':<10} {'BYTES':>8}  TYPE")
    for row in rows:
        click.echo(f"{row['id']:>8}  {utc_text(row['received_at'])}  {row['signature']:<10} "
                   f"{row['size']:>8}  {row['headers'].get('content-type', '-')}")


@capture.command("show")
@click.argument("name")
@click.argument("sample_id", type=int)
def show(name: str, sample_id: int) -> None:
    """Show a sample: its headers (credentials redacted), query and body."""
    sample = _sample(_store(), name, sample_id)
    click.echo(json.dumps({k: sample[k] for k in ("id", "name", "method", "signature",
                                                  "headers", "query")}, indent=2))
    click.echo(pretty_body(sample["body"]))


@capture.command("replay")
@click.argument("name")
@click.argument("sample_id", type=int)
def replay(name: str, sample_id: int) -> None:
    """Accept a sample through the mapping NAME, as if it had just arrived (it is trusted:
    it was verified, or unchecked, when it was captured)."""
    settings = Settings.from_env()
    store = _store()
    sample = _sample(store, name, sample_id)
    registry = Registry(settings.mappings)
    registry.load()
    replayed = replay_sample(store, registry.get(name), sample, time.time())
    click.echo(replayed.message)
    if not replayed.ok:
        raise Failed()


@click.command("draft")
@click.argument("name")
@click.argument("sample_id", type=int)
@click.option("--write", "write_it", is_flag=True,
              help="Write NAME.yaml and the sample into the mappings folder (never over a "
                   "file) instead of printing the mapping.")
@click.option("--region", default="IN", show_default=True,
              help="The country of numbers written without a country code.")
def draft_command(name: str, sample_id: int, write_it: bool, region: str) -> None:
    """Draft a commented mapping for /hooks/NAME from a captured sample."""
    settings = Settings.from_env()
    made = draft(check_name(name), _sample(_store(), name, sample_id), region or None)
    if not write_it:
        click.echo(made.yaml, nl=False)
        click.echo(f"# (its test reads {made.example}: `relay draft {name} {sample_id} "
                   "--write` writes both into the mappings folder)", err=True)
        return
    mapping, example = write(Path(settings.mappings), name, made)
    click.echo(f"wrote {mapping} and {example}; fill in what it marks FILL IN, then "
               f"`relay check {mapping}`")
