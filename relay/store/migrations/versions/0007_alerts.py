"""Alerts: the state of each alert condition and the outbox of messages (relay/alerts/), and
an index on attempts by start time for the failure rate of the recent attempts."""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007"
down_revision = "0006"

_json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "alert_state",
        sa.Column("key", sa.String(300), primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("since", sa.Float, nullable=False),
        sa.Column("sent_at", sa.Float),
        sa.Column("last_at", sa.Float),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_table(
        "alert_outbox",
        sa.Column("id", _id, primary_key=True),
        sa.Column("key", sa.String(300), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("message", _json, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("next_at", sa.Float, nullable=False),
        sa.Column("lease_until", sa.Float),
        sa.Column("leased_by", sa.String(100)),
        sa.Column("finished_at", sa.Float),
        sa.Column("last_error", sa.Text),
    )
    op.create_index("alert_outbox_due", "alert_outbox", ["next_at"],
                    sqlite_where=sa.text("status = 'pending'"),
                    postgresql_where=sa.text("status = 'pending'"))
    op.create_index("attempts_started", "attempts", ["started_at"])
