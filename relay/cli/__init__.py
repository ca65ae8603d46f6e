"""The `relay` command: one module per group of commands, one way to fail (group.py)."""

from relay.cli import alerts, capture, events, mappings, run
from relay.cli.group import main

for _command in (mappings.check, mappings.preview, mappings.send, mappings.schema_command,
                 run.serve, run.worker, run.db, run.sandbox,
                 events.events, events.show, events.replay, events.purge, events.send_now,
                 events.cancel, alerts.alerts,
                 capture.capture, capture.draft_command):
    main.add_command(_command)

__all__ = ["main"]
