"""The first schema: events, deliveries, attempts."""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None

_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("id", _id, primary_key=True),
        sa.Column("mapping", sa.String(200), nullable=False),
        sa.Column("received_at", sa.Float, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("body", sa.LargeBinary, nullable=False),
        sa.Column("headers", _json, nullable=False),
        sa.Column("query", _json, nullable=False),
        sa.Column("errors", _json),
        sa.Column("note", sa.Text),
    )
    op.create_index("events_received", "events", ["received_at"])
    op.create_index("events_mapping_received", "events", ["mapping", "received_at"])
    op.create_table(
        "deliveries",
        sa.Column("id", _id, primary_key=True),
        sa.Column("event_id", _id, sa.ForeignKey("events.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("mapping", sa.String(200), nullable=False),
        sa.Column("item", sa.Integer),
        sa.Column("dedup_key", sa.String(500)),
        sa.Column("flow_key", sa.String(200), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("phone", sa.String(32), nullable=False),
        sa.Column("attributes", _json, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_at", sa.Float, nullable=False),
        sa.Column("lease_until", sa.Float),
        sa.Column("leased_by", sa.String(100)),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("last_error", sa.Text),
    )
    op.create_index("deliveries_event", "deliveries", ["event_id"])
    op.create_index("deliveries_dedup", "deliveries", ["mapping", "dedup_key"], unique=True,
                    sqlite_where=sa.text("dedup_key IS NOT NULL"),
                    postgresql_where=sa.text("dedup_key IS NOT NULL"))
    op.create_index("deliveries_due", "deliveries", ["next_at"],
                    sqlite_where=sa.text("status = 'pending'"),
                    postgresql_where=sa.text("status = 'pending'"))
    op.create_table(
        "attempts",
        sa.Column("id", _id, primary_key=True),
        sa.Column("delivery_id", _id, sa.ForeignKey("deliveries.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("duration_ms", sa.Float, nullable=False),
        sa.Column("http_status", sa.Integer),
        sa.Column("engati_code", sa.Integer),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("error", sa.Text),
    )
    op.create_index("attempts_delivery", "attempts", ["delivery_id"])
