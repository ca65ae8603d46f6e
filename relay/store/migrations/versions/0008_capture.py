"""Capture windows and samples (filled in by the capture work)."""

revision = "0008"
down_revision = "0007"


def upgrade() -> None:
    pass
