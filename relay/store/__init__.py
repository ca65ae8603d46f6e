"""The store: every webhook, delivery and attempt, in SQLite or PostgreSQL."""

from relay.store.sql import Store, database_url

__all__ = ["Store", "database_url"]
