"""Bounded storage under abuse, and console sessions that end on the server.

- refusals (a row per refused request) becomes refusal_counts (a row per mapping, minute and
  kind, with a count and a sample);
- events.dedup_key, unique per mapping and status: failed and skipped events are stored once;
- instance: the console's session key, random per deployment;
- console_sessions: one row per logged-in console session, deleted at logout.
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"


def upgrade() -> None:
    op.drop_index("refusals_at", table_name="refusals")
    op.drop_table("refusals")
    op.create_table(
        "refusal_counts",
        sa.Column("mapping", sa.String(200), primary_key=True),
        sa.Column("minute", sa.BigInteger, primary_key=True),
        sa.Column("kind", sa.String(100), primary_key=True),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("sample", sa.Text, nullable=False),
        sa.Column("last_at", sa.Float, nullable=False),
    )
    op.create_index("refusal_counts_last", "refusal_counts", ["last_at"])
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("dedup_key", sa.String(500)))
    op.create_index("events_dedup", "events", ["mapping", "status", "dedup_key"], unique=True,
                    sqlite_where=sa.text("dedup_key IS NOT NULL"),
                    postgresql_where=sa.text("dedup_key IS NOT NULL"))
    op.create_table(
        "instance",
        sa.Column("key", sa.String(100), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    op.create_table(
        "console_sessions",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
    )
    op.create_index("console_sessions_expires", "console_sessions", ["expires_at"])
