"""Alembic runs migrations on the connection `Store.upgrade()` hands it."""

from alembic import context

from relay.store.tables import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata)
with context.begin_transaction():
    context.run_migrations()
