"""Search over events (filled in by the search work)."""

revision = "0009"
down_revision = "0008"


def upgrade() -> None:
    pass
