"""The `relay` group, and the one way a command fails.

A command that cannot do what it was asked raises RelayError with a message: the group prints
it as `error: <message>` and exits 1. A command that has already printed why (a failed check,
a preview that could not be mapped) raises `Failed()`, which exits 1 saying nothing more.
click's own usage errors keep click's form and exit status 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from dotenv import load_dotenv

from relay.errors import RelayError


class Failed(RelayError):
    """The command failed and has said why: exit 1 with nothing more to print."""


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except RelayError as exc:
            if str(exc):
                click.echo(f"error: {exc}", err=True)
            ctx.exit(1)


@click.group(cls=_Group)
def main() -> None:
    """A webhook relay for Engati chatbots: verify, map, store, deliver.

    Settings come from the environment, and from a .env file in the working directory for
    variables the environment does not set."""
    # Before any command reads Settings.from_env; what the environment sets wins.
    load_dotenv(Path.cwd() / ".env", override=False)
