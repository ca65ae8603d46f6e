"""Which flow rule each delivery came from (filled in by the event page work)."""

revision = "0010"
down_revision = "0009"


def upgrade() -> None:
    pass
