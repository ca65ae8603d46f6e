"""Which worker made each attempt; dead deliveries found without scanning history."""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    op.add_column("attempts", sa.Column("worker", sa.String(100)))
    op.create_index("deliveries_dead", "deliveries", ["updated_at"],
                    sqlite_where=sa.text("status = 'dead'"),
                    postgresql_where=sa.text("status = 'dead'"))
