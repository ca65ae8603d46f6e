"""Which flow rule each delivery came from: `deliveries.rule` holds, as the mapping said when
the webhook was accepted (or last replayed), which entry of `flows` chose the delivery's flow
and why (relay.mapping.Rule.stored()). Rows written before stay NULL: the event page says it
was not recorded rather than guess with a mapping that may have changed since."""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"


def upgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("rule", sa.Text))
