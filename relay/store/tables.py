"""The database schema: events, the deliveries planned from them, and every attempt.

Times are UNIX seconds (floats): the same on SQLite and PostgreSQL, and simple to compare.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

metadata = sa.MetaData()
_json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

events = sa.Table(
    "events",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
    sa.Column("mapping", sa.String(200), nullable=False),
    sa.Column("received_at", sa.Float, nullable=False),
    # accepted: deliveries planned | skipped: the filter said no | failed: nothing could be planned
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("body", sa.LargeBinary, nullable=False),  # byte-exact, as received
    sa.Column("headers", _json, nullable=False),  # lower-cased, credentials redacted
    sa.Column("query", _json, nullable=False),
    sa.Column("errors", _json),  # the mapping's field errors, for failed (or partly failed) events
    sa.Column("note", sa.Text),  # why an event was skipped
    # The sender's event id for failed and skipped events (accepted ones are deduplicated by
    # their deliveries): a resend of one is answered as a duplicate, not stored again.
    sa.Column("dedup_key", sa.String(500)),
    sa.Index("events_received", "received_at"),
    sa.Index("events_mapping_received", "mapping", "received_at"),
    sa.Index(
        "events_dedup",
        "mapping",
        "status",
        "dedup_key",
        unique=True,
        sqlite_where=sa.text("dedup_key IS NOT NULL"),
        postgresql_where=sa.text("dedup_key IS NOT NULL"),
    ),
)
# Search in the body (relay/store/search.py). PostgreSQL (0015): `events_search`, each indexed
# event's body as `encode(body, 'escape')` spells it (defined for any bytes: a body that is
# not UTF-8 still stores), under a trigram index; the worker fills it after the webhooks'
# commits (PostgresStore.index_search), and an event's row goes with the event. SQLite (0009)
# keeps an FTS5 table of that name instead, which this file cannot express: the migration
# makes it, and test_migrations.py leaves this table out there.
events_search = sa.Table(
    "events_search",
    metadata,
    sa.Column("id", sa.BigInteger, sa.ForeignKey("events.id", ondelete="CASCADE"),
              primary_key=True, autoincrement=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Index("events_search_body", "body", postgresql_using="gin",
             postgresql_ops={"body": "gin_trgm_ops"}),
)

deliveries = sa.Table(
    "deliveries",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
    sa.Column("event_id", sa.ForeignKey("events.id", ondelete="CASCADE"), nullable=False),
    sa.Column("mapping", sa.String(200), nullable=False),
    sa.Column("item", sa.Integer),  # index in the batch under `each`
    sa.Column("dedup_key", sa.String(500)),
    sa.Column("flow_key", sa.String(200), nullable=False),
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("phone", sa.String(32), nullable=False),
    sa.Column("attributes", _json, nullable=False),
    # pending (waiting or in flight) | delivered | dead | cancelled
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_at", sa.Float, nullable=False),
    sa.Column("lease_until", sa.Float),  # set while a worker holds the delivery
    sa.Column("leased_by", sa.String(100)),
    sa.Column("created_at", sa.Float, nullable=False),  # when it was (re)queued: RELAY_MAX_AGE
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("last_error", sa.Text),
    sa.Column("failure", sa.String(32)),  # the last error's FailureKind (the inbox groups by it)
    # Which flow rule chose flow_key and why, as mapped when accepted (or last replayed):
    # Rule.stored(), e.g. "rule 2: when `...` was true; rule 1 `...` was false".
    sa.Column("rule", sa.Text),
    # Scheduling (0012): why next_at was first set as it was ("delay 30m", "at ... - 1h;
    # quiet hours ..."; None: at once), and the key a later webhook's `cancel:` names it by.
    sa.Column("schedule", sa.Text),
    sa.Column("cancel_key", sa.String(500)),
    sa.Index("deliveries_event", "event_id"),
    # Search by phone: a number typed in any format is looked up by its stored forms (0009).
    sa.Index("deliveries_phone", "phone"),
    # The dashboard's queue depth counts deliveries queued since a time (0009).
    sa.Index("deliveries_created", "created_at"),
    # A dedup key is accepted once per mapping: the sender's retries are not delivered twice.
    sa.Index(
        "deliveries_dedup",
        "mapping",
        "dedup_key",
        unique=True,
        sqlite_where=sa.text("dedup_key IS NOT NULL"),
        postgresql_where=sa.text("dedup_key IS NOT NULL"),
    ),
    # Operators find dead deliveries without scanning the history.
    sa.Index(
        "deliveries_dead",
        "updated_at",
        sqlite_where=sa.text("status = 'dead'"),
        postgresql_where=sa.text("status = 'dead'"),
    ),
    # /metrics counts the cancelled deliveries without scanning the history (0013).
    sa.Index(
        "deliveries_cancelled",
        "updated_at",
        sqlite_where=sa.text("status = 'cancelled'"),
        postgresql_where=sa.text("status = 'cancelled'"),
    ),
    # A cancellation finds the pending deliveries with its key.
    sa.Index(
        "deliveries_cancel",
        "mapping",
        "cancel_key",
        sqlite_where=sa.text("cancel_key IS NOT NULL"),
        postgresql_where=sa.text("cancel_key IS NOT NULL"),
    ),
    # Claims scan only the queue, however long the history grows.
    sa.Index(
        "deliveries_due",
        "next_at",
        sqlite_where=sa.text("status = 'pending'"),
        postgresql_where=sa.text("status = 'pending'"),
    ),
)

attempts = sa.Table(
    "attempts",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
    sa.Column("delivery_id", sa.ForeignKey("deliveries.id", ondelete="CASCADE"), nullable=False),
    sa.Column("started_at", sa.Float, nullable=False),
    sa.Column("duration_ms", sa.Float, nullable=False),
    sa.Column("http_status", sa.Integer),
    sa.Column("engati_code", sa.Integer),
    sa.Column("outcome", sa.String(16), nullable=False),  # delivered | retry | dead
    sa.Column("error", sa.Text),
    sa.Column("failure", sa.String(32)),  # the error's FailureKind
    sa.Column("worker", sa.String(100)),  # host:pid of the worker that made the call
    sa.Index("attempts_delivery", "delivery_id"),
    # The alerts' failure rate (0007) and the dashboard's outcomes, latencies and queue
    # depth read recent attempts without scanning the history.
    sa.Index("attempts_started", "started_at"),
)

# Per-bot pacing shared by every worker: `next_at` is the next free slot under the bot's
# `engati.rate_limit`; `paused_until` is when Engati's Retry-After (a 429) runs out.
bots = sa.Table(
    "bots",
    metadata,
    sa.Column("bot", sa.String(300), primary_key=True),  # customer_id/bot_key
    sa.Column("next_at", sa.Float, nullable=False),
    sa.Column("paused_until", sa.Float, nullable=False),
)

# Requests refused for their signature, counted rather than stored one by one: a row per
# mapping, minute and kind of refusal, with a count and one sample reason. A flood of forged
# posts adds at most a row per mapping and kind a minute, whatever its rate.
refusals = sa.Table(
    "refusal_counts",
    metadata,
    sa.Column("mapping", sa.String(200), primary_key=True),
    sa.Column("minute", sa.BigInteger, primary_key=True),  # UNIX seconds // 60
    sa.Column("kind", sa.String(100), primary_key=True),  # e.g. "no header", "no match"
    sa.Column("count", sa.Integer, nullable=False),
    sa.Column("sample", sa.Text, nullable=False),  # one reason, as the log has it
    sa.Column("last_at", sa.Float, nullable=False),
    sa.Index("refusal_counts_last", "last_at"),
)

# Values a deployment's processes share: the console's session signing key (`session_key`);
# the last event indexed for search (`search_indexed`: every event up to it is indexed; on
# PostgreSQL `search_settling` too, see PostgresStore.index_search).
instance = sa.Table(
    "instance",
    metadata,
    sa.Column("key", sa.String(100), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

# Console sessions, so that logging out ends one on the server: the cookie carries a random
# session id; the row (keyed by the id's SHA-256) is deleted at logout and expires.
console_sessions = sa.Table(
    "console_sessions",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),  # hex SHA-256 of the cookie's id
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
    sa.Index("console_sessions_expires", "expires_at"),
)

# Alerts (relay/alerts/): the state of each alert condition, shared by every worker so that
# a transition is made (and its message queued) once, by whichever worker's conditional
# update wins (`version` is compared and bumped).
alert_state = sa.Table(
    "alert_state",
    metadata,
    sa.Column("key", sa.String(300), primary_key=True),  # e.g. dead:typeform-leads:timeout
    sa.Column("kind", sa.String(32), nullable=False),  # dead, failure_rate, queue_age, ...
    sa.Column("status", sa.String(16), nullable=False),  # firing | ok
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("since", sa.Float, nullable=False),  # when it took this status
    sa.Column("sent_at", sa.Float),  # when its last message was queued
    sa.Column("last_at", sa.Float),  # dead: the newest death its last message counted
    sa.Column("updated_at", sa.Float, nullable=False),
)

# The alert messages to send: a row per message and channel, claimed under a lease as
# deliveries are, retried with backoff, kept a while once sent or given up.
alert_outbox = sa.Table(
    "alert_outbox",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
    sa.Column("key", sa.String(300), nullable=False),
    sa.Column("channel", sa.String(16), nullable=False),  # webhook | email
    sa.Column("message", _json, nullable=False),  # the relay.alert/1 payload: no secrets
    sa.Column("status", sa.String(16), nullable=False),  # pending | sent | failed
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("next_at", sa.Float, nullable=False),
    sa.Column("lease_until", sa.Float),
    sa.Column("leased_by", sa.String(100)),
    sa.Column("finished_at", sa.Float),
    sa.Column("last_error", sa.Text),
    sa.Index(
        "alert_outbox_due",
        "next_at",
        sqlite_where=sa.text("status = 'pending'"),
        postgresql_where=sa.text("status = 'pending'"),
    ),
)

# Capture windows (`relay capture NAME`): while one is open, requests to /hooks/NAME are kept
# as samples instead of being delivered. A row per window; `taken` counts its samples, so
# that the cap holds across every web process (the UPDATE that takes a slot locks the row).
capture_windows = sa.Table(
    "capture_windows",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),  # the /hooks/<name> it captures
    sa.Column("opened_at", sa.Float, nullable=False),
    sa.Column("closes_at", sa.Float, nullable=False),
    sa.Column("taken", sa.Integer, nullable=False),  # samples stored so far
    sa.Index("capture_windows_closes", "closes_at"),
)

# A captured request: byte-exact body, lower-cased headers with credentials redacted, and
# whether its signature was checked (verified) or could not be (unchecked: no mapping or no
# secret). Never delivered.
capture_samples = sa.Table(
    "capture_samples",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
    sa.Column("window_id", sa.ForeignKey("capture_windows.id", ondelete="CASCADE"),
              nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("received_at", sa.Float, nullable=False),
    sa.Column("method", sa.String(16), nullable=False),
    sa.Column("headers", _json, nullable=False),
    sa.Column("query", _json, nullable=False),
    sa.Column("body", sa.LargeBinary, nullable=False),
    sa.Column("signature", sa.String(16), nullable=False),  # verified | unchecked
    sa.Index("capture_samples_name", "name", "id"),
    sa.Index("capture_samples_window", "window_id"),
)

# Lookups (relay/lookup/): for a mapping with `lookup:`, the fetch each webhook (each item
# under `each`) needs before it can be mapped, claimed under a lease as deliveries are and
# retried with the same backoff. Once its answer is mapped, its delivery is inserted in the
# same transaction. `tries` keeps the last attempts (time, ms, HTTP status, error): a lookup
# makes few, and its page shows them.
lookups = sa.Table(
    "lookups",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
    sa.Column("event_id", sa.ForeignKey("events.id", ondelete="CASCADE"), nullable=False),
    sa.Column("mapping", sa.String(200), nullable=False),
    sa.Column("item", sa.Integer),  # index in the batch under `each`
    sa.Column("dedup_key", sa.String(500)),
    sa.Column("url", sa.Text, nullable=False),  # as planned: no token (that is a header)
    # pending (waiting or in flight) | done (mapped: its delivery is planned) | skipped (the
    # filter said no) | failed (the answer could not be mapped) | dead (never fetched)
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_at", sa.Float, nullable=False),
    sa.Column("lease_until", sa.Float),
    sa.Column("leased_by", sa.String(100)),
    sa.Column("created_at", sa.Float, nullable=False),  # when it was (re)queued: RELAY_MAX_AGE
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("last_error", sa.Text),
    sa.Column("tries", _json, nullable=False),
    sa.Index("lookups_event", "event_id"),
    sa.Index(
        "lookups_dedup",
        "mapping",
        "dedup_key",
        unique=True,
        sqlite_where=sa.text("dedup_key IS NOT NULL"),
        postgresql_where=sa.text("dedup_key IS NOT NULL"),
    ),
    sa.Index(
        "lookups_due",
        "next_at",
        sqlite_where=sa.text("status = 'pending'"),
        postgresql_where=sa.text("status = 'pending'"),
    ),
)

# Cancellations (0012; cancels.py): what a webhook's `cancel:` named, kept until `expires_at`
# for a delivery that has not arrived yet. A row per mapping and key: a resend, or another
# cancellation of the same key, only moves its time on.
cancels = sa.Table(
    "cancels",
    metadata,
    sa.Column("mapping", sa.String(200), primary_key=True),  # the mapping whose deliveries
    sa.Column("key", sa.String(500), primary_key=True),
    sa.Column("event_id", sa.BigInteger, nullable=False),  # the cancelling webhook
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
    sa.Index("cancels_expires", "expires_at"),
)
