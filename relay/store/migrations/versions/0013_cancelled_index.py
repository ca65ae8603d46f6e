"""Cancelled deliveries counted from an index of their own, as dead ones are: /metrics
reads the count at every scrape, and a scan of the whole history would grow with it."""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"


def upgrade() -> None:
    op.create_index("deliveries_cancelled", "deliveries", ["updated_at"],
                    sqlite_where=sa.text("status = 'cancelled'"),
                    postgresql_where=sa.text("status = 'cancelled'"))
