"""Capture windows and their samples (`relay capture NAME`; relay/capture/)."""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0008"
down_revision = "0007"

_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "capture_windows",
        sa.Column("id", _id, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("opened_at", sa.Float, nullable=False),
        sa.Column("closes_at", sa.Float, nullable=False),
        sa.Column("taken", sa.Integer, nullable=False),
    )
    op.create_index("capture_windows_closes", "capture_windows", ["closes_at"])
    op.create_table(
        "capture_samples",
        sa.Column("id", _id, primary_key=True),
        sa.Column("window_id", _id, sa.ForeignKey("capture_windows.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("received_at", sa.Float, nullable=False),
        sa.Column("method", sa.String(16), nullable=False),
        sa.Column("headers", _json, nullable=False),
        sa.Column("query", _json, nullable=False),
        sa.Column("body", sa.LargeBinary, nullable=False),
        sa.Column("signature", sa.String(16), nullable=False),
    )
    op.create_index("capture_samples_name", "capture_samples", ["name", "id"])
    op.create_index("capture_samples_window", "capture_samples", ["window_id"])
