"""Scheduling: why a delivery's first due time is what it is, the key a later webhook
cancels it by, and the cancellations kept for deliveries that have not arrived yet."""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"


def upgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("schedule", sa.Text))
        batch.add_column(sa.Column("cancel_key", sa.String(500)))
    op.create_index("deliveries_cancel", "deliveries", ["mapping", "cancel_key"],
                    sqlite_where=sa.text("cancel_key IS NOT NULL"),
                    postgresql_where=sa.text("cancel_key IS NOT NULL"))
    op.create_table(
        "cancels",
        sa.Column("mapping", sa.String(200), primary_key=True),
        sa.Column("key", sa.String(500), primary_key=True),
        sa.Column("event_id", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
    )
    op.create_index("cancels_expires", "cancels", ["expires_at"])
