"""Per-bot pacing shared by every worker: the next free slot and any pause Engati asked for."""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    op.create_table(
        "bots",
        sa.Column("bot", sa.String(300), primary_key=True),
        sa.Column("next_at", sa.Float, nullable=False),
        sa.Column("paused_until", sa.Float, nullable=False),
    )
