"""Lookups (relay/lookup/): the fetch a webhook of a mapping with `lookup:` needs before it
can be mapped (Meta's lead, say), queued, leased and retried like a delivery."""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0011"
down_revision = "0010"

_json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "lookups",
        sa.Column("id", _id, primary_key=True),
        sa.Column("event_id", _id, sa.ForeignKey("events.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("mapping", sa.String(200), nullable=False),
        sa.Column("item", sa.Integer),
        sa.Column("dedup_key", sa.String(500)),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_at", sa.Float, nullable=False),
        sa.Column("lease_until", sa.Float),
        sa.Column("leased_by", sa.String(100)),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("last_error", sa.Text),
        sa.Column("tries", _json, nullable=False),
    )
    op.create_index("lookups_event", "lookups", ["event_id"])
    op.create_index("lookups_dedup", "lookups", ["mapping", "dedup_key"], unique=True,
                    sqlite_where=sa.text("dedup_key IS NOT NULL"),
                    postgresql_where=sa.text("dedup_key IS NOT NULL"))
    op.create_index("lookups_due", "lookups", ["next_at"],
                    sqlite_where=sa.text("status = 'pending'"),
                    postgresql_where=sa.text("status = 'pending'"))
