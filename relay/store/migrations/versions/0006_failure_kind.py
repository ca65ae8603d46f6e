"""Failure kinds: `deliveries.failure` and `attempts.failure` hold the FailureKind of the
error beside it, so that the failures inbox groups by kind, never by the wording of an error.

Rows written before are given the kind their error text says, as the worker wrote it
(relay/delivery/worker.py and relay/delivery/engati.py, at revision 0005).
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"

# (LIKE pattern of the error, kind), first match wins; a dead delivery's error ends in
# "; gave up after ...", which the patterns allow for.
KINDS = (
    ("%engati settings not set%", "unconfigured"),
    ("%timed out%", "timeout"),
    ("%could not reach%", "unreachable"),
    ("%HTTP 401%", "auth"),
    ("%HTTP 403%", "auth"),
    ("%HTTP 429%", "rate_limited"),
    ("%HTTP 4__%", "rejected"),
    ("%HTTP 5__%", "server"),
    ("%HTTP 2__ with status%", "code"),
)


def upgrade() -> None:
    for table, error in (("deliveries", "last_error"), ("attempts", "error")):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("failure", sa.String(32)))
        cases = " ".join(f"WHEN {error} LIKE '{pattern}' THEN '{kind}'"
                         for pattern, kind in KINDS)
        op.execute(f"UPDATE {table} SET failure = CASE {cases} END "
                   f"WHERE {error} IS NOT NULL")
