"""A store in memory that keeps the contract of relay/store/base.py, for unit tests of the
worker and the web that need a store but not a database.

It keeps what those use: accepting webhooks (with deduplication), claims and leases,
attempts and outcomes, deferring and releasing, per-bot pacing and pauses, the event reads,
the failures inbox and the queue's figures. tests/unit/store/test_contract.py runs it
through the same tests as the real backends (the `any_store` ones). The history's upkeep
(replay, purge, refusal counts), migrations and console sessions need a real store: there,
it says so.
"""

from __future__ import annotations

import threading
from typing import Any

from relay.mapping import Result
from relay.model import (
    Attempt,
    Claimed,
    ClaimedLookup,
    DeliveryStatus,
    EventStatus,
    FailureKind,
    Looked,
    Outcome,
    Receipt,
    Received,
)
from relay.store import Store
from relay.store.base import SCHEDULED, keeps
from relay.store.cancels import OPERATOR
from relay.store.history import SENT_NOW
from relay.store.refusals import RefusalCounter
from relay.store.rows import attempt_row, delivery_row, event_row, storable
from relay.store.search import check_text


class FakeStore(Store):
    def __init__(self) -> None:
        self._lock = threading.Lock()  # the worker and the web call from several threads
        self.rows: dict[str, list[dict[str, Any]]] = {"events": [], "deliveries": [],
                                                      "attempts": [], "refusals": [],
                                                      "alert_outbox": [], "windows": [],
                                                      "samples": []}
        self._bots: dict[str, dict[str, float]] = {}
        self._refusals = RefusalCounter()
        self._alert_states: dict[str, dict[str, Any]] = {}

    def _add(self, table: str, row: dict[str, Any]) -> dict[str, Any]:
        row = {**row, "id": len(self.rows[table]) + 1}
        self.rows[table].append(row)
        return row

    # --- inbound ---------------------------------------------------------------------------

    def accept(self, received: Received) -> Receipt:
        if received.result.lookups or received.result.cancels:
            raise NotImplementedError("lookups and cancellations need a real store (SQLite or "
                                      "PostgreSQL)")
        with self._lock:
            row = event_row(received)
            status = row["status"]
            if row["dedup_key"] is not None:
                for event in self.rows["events"]:
                    if (event["mapping"], event["status"], event["dedup_key"]) == (
                            received.mapping, status, row["dedup_key"]):
                        return Receipt(EventStatus.DUPLICATE, event["id"])
            taken = {(d["mapping"], d["dedup_key"]): d["event_id"]
                     for d in self.rows["deliveries"] if d["dedup_key"] is not None}
            new = [d for d in received.result.deliveries
                   if d.dedup_key is None or (received.mapping, storable(d.dedup_key)) not in taken]
            if received.result.deliveries and not new:
                first = received.result.deliveries[0].dedup_key
                return Receipt(EventStatus.DUPLICATE, taken[(received.mapping, storable(first))])
            event = self._add("events", row)
            for d in new:
                self._add("deliveries", {**delivery_row(event["id"], received.mapping, d,
                                                        received.received_at),
                                         "lease_until": None, "leased_by": None,
                                         "last_error": None, "failure": None})
            return Receipt(status, event["id"], len(new))

    def refuse(self, mapping: str, reason: str, now: float) -> bool:
        return self._refusals.add(mapping, reason, now)[1]

    def flush(self, now: float) -> None:
        with self._lock:
            for row in self._refusals.take(now):
                self._add("refusals", row)

    # --- the worker ------------------------------------------------------------------------

    def next_due(self, now: float) -> float | None:
        with self._lock:
            return min((d["next_at"] for d in self.rows["deliveries"]
                        if d["status"] == DeliveryStatus.PENDING
                        and (d["lease_until"] is None or d["lease_until"] <= now)), default=None)

    def send_now(self, delivery_id: int, now: float) -> bool:
        with self._lock:
            d = self._delivery(delivery_id)
            created = now if d is None else min(d["created_at"], now)
        return self._operate(delivery_id, now, next_at=now, created_at=created,
                             schedule=SENT_NOW)

    def cancel_delivery(self, delivery_id: int, now: float) -> bool:
        return self._operate(delivery_id, now, status=DeliveryStatus.CANCELLED,
                             last_error=OPERATOR)

    def _operate(self, delivery_id: int, now: float, **changes: Any) -> bool:
        with self._lock:
            d = self._delivery(delivery_id)
            if d is None or d["status"] != DeliveryStatus.PENDING or (
                    d["lease_until"] is not None and d["lease_until"] > now):
                return False
            d.update(changes, updated_at=now)
            return True

    def claim_lookups(self, worker: str, limit: int, now: float,
                      lease: float) -> list[ClaimedLookup]:
        return []  # it never holds one: accept refuses them

    def finish_lookup(self, looked: Looked, worker: str, now: float) -> bool:
        raise NotImplementedError("lookups need a real store (SQLite or PostgreSQL)")

    def claim(self, worker: str, limit: int, now: float, lease: float) -> list[Claimed]:
        with self._lock:
            due = sorted((d for d in self.rows["deliveries"]
                          if d["status"] == DeliveryStatus.PENDING and d["next_at"] <= now
                          and (d["lease_until"] is None or d["lease_until"] <= now)),
                         key=lambda d: d["next_at"])[:limit]
            for d in due:
                d.update(lease_until=now + lease, leased_by=worker)
            return [Claimed(**{field: d[field] for field in Claimed.__dataclass_fields__})
                    for d in sorted(due, key=lambda d: d["id"])]

    def record_many(self, outcomes: list[Attempt], worker: str, now: float) -> list[bool]:
        with self._lock:
            kept = []
            for attempt in map(attempt_row, outcomes):
                delivery = self._delivery(attempt.delivery_id)
                keep = keeps(None if delivery is None else
                             (delivery["status"], delivery["leased_by"]), attempt, worker)
                self._add("attempts", {
                    "delivery_id": attempt.delivery_id, "started_at": attempt.started_at,
                    "duration_ms": attempt.duration_ms, "http_status": attempt.http_status,
                    "engati_code": attempt.engati_code, "outcome": attempt.outcome,
                    "error": attempt.error, "failure": attempt.failure, "worker": worker})
                if keep and delivery is not None:
                    delivery.update(
                        status=Outcome(attempt.outcome).status,
                        attempts=delivery["attempts"] + 1,
                        next_at=attempt.next_at if attempt.next_at is not None else now,
                        lease_until=None, leased_by=None, updated_at=now,
                        last_error=attempt.error, failure=attempt.failure)
                kept.append(keep)
            return kept

    def _delivery(self, delivery_id: int) -> dict[str, Any] | None:
        return next((d for d in self.rows["deliveries"] if d["id"] == delivery_id), None)

    def defer(self, claimed: Claimed, worker: str, next_at: float, now: float) -> None:
        with self._lock:
            delivery = self._delivery(claimed.id)
            if delivery is not None and delivery["leased_by"] == worker:
                delivery.update(next_at=next_at, lease_until=None, leased_by=None,
                                updated_at=now)

    def release(self, ids: list[int], worker: str) -> None:
        with self._lock:
            for delivery in self.rows["deliveries"]:
                if delivery["id"] in ids and delivery["leased_by"] == worker:
                    delivery.update(lease_until=None, leased_by=None)

    def reserve(self, bot: str, interval: float, now: float,
                horizon: float) -> tuple[float, bool]:
        with self._lock:
            row = self._bots.setdefault(bot, {"next_at": 0.0, "paused_until": 0.0})
            slot = max(now, row["next_at"], row["paused_until"])
            if slot - now > horizon:
                return slot, False
            row["next_at"] = slot + interval
            return slot, True

    def pause(self, bot: str, until: float) -> None:
        with self._lock:
            row = self._bots.setdefault(bot, {"next_at": 0.0, "paused_until": 0.0})
            row["paused_until"] = max(row["paused_until"], until)

    def paused_until(self, bot: str) -> float:
        with self._lock:
            return self._bots.get(bot, {}).get("paused_until", 0.0)

    def pauses(self, now: float) -> dict[str, float]:
        with self._lock:
            return {bot: row["paused_until"] for bot, row in self._bots.items()
                    if row["paused_until"] > now}

    def checkpoint(self) -> None:
        """Nothing to make durable."""

    # --- running the store -----------------------------------------------------------------

    def upgrade(self) -> tuple[str | None, str | None]:
        return None, None  # no schema to migrate

    def ping(self) -> None:
        """Always there."""

    def dispose(self) -> None:
        """Nothing to close."""

    # --- the history -----------------------------------------------------------------------

    def event(self, event_id: int) -> dict[str, Any] | None:
        with self._lock:
            found = next((e for e in self.rows["events"] if e["id"] == event_id), None)
            if found is None:
                return None
            mine = [{**d, "attempt_log": [a for a in self.rows["attempts"]
                                          if a["delivery_id"] == d["id"]]}
                    for d in self.rows["deliveries"] if d["event_id"] == event_id]
            return {**found, "deliveries": mine}

    def delivery(self, delivery_id: int) -> dict[str, Any] | None:
        with self._lock:
            d = self._delivery(delivery_id)
            return None if d is None else {**d, "attempt_log": [
                a for a in self.rows["attempts"] if a["delivery_id"] == delivery_id]}

    def events(self, *, status: str | None = None, mapping: str | None = None,
               since: float | None = None, phone: str | None = None,
               before: int | None = None, limit: int = 50, phones: tuple[str, ...] = (),
               text: str | None = None, now: float | None = None) -> list[dict[str, Any]]:
        wanted_text = None if text is None else check_text(text).casefold()

        def later(d: dict[str, Any]) -> bool:
            return (now is not None and d["status"] == DeliveryStatus.PENDING
                    and d["attempts"] == 0 and d["next_at"] > now)

        with self._lock:
            listed = []
            for event in sorted(self.rows["events"], key=lambda e: -e["id"]):
                mine = [d for d in self.rows["deliveries"] if d["event_id"] == event["id"]]
                states = [d["status"] for d in mine]
                wanted = {
                    None: True, EventStatus.ACCEPTED: event["status"] == EventStatus.ACCEPTED,
                    EventStatus.SKIPPED: event["status"] == EventStatus.SKIPPED,
                    EventStatus.FAILED: event["status"] == EventStatus.FAILED,
                    DeliveryStatus.PENDING: DeliveryStatus.PENDING in states,
                    DeliveryStatus.DEAD: DeliveryStatus.DEAD in states,
                    DeliveryStatus.CANCELLED: DeliveryStatus.CANCELLED in states,
                    SCHEDULED: any(later(d) for d in mine),
                    DeliveryStatus.DELIVERED: event["status"] == EventStatus.ACCEPTED
                    and all(s in (DeliveryStatus.DELIVERED, DeliveryStatus.CANCELLED)
                            for s in states)
                    and (DeliveryStatus.DELIVERED in states or not states)}[status]
                digits = "".join(ch for ch in phone or "" if ch.isdigit())
                if not wanted or (mapping and event["mapping"] != mapping) or (
                        since is not None and event["received_at"] < since) or (
                        before is not None and event["id"] >= before) or (
                        phone and not (digits and any(digits in d["phone"] for d in mine))) or (
                        phones and not any(d["phone"] in phones for d in mine)) or (
                        wanted_text is not None and wanted_text not in
                        event["body"].decode("utf-8", "replace").casefold()):
                    continue
                errors = sorted((d for d in mine if d["last_error"] is not None),
                                key=lambda d: -d["updated_at"])
                listed.append({
                    **{k: event[k] for k in ("id", "mapping", "received_at", "status",
                                             "errors", "note")},
                    "total": len(mine), **{s: states.count(s) for s in DeliveryStatus},
                    SCHEDULED: sum(map(later, mine)),
                    "scheduled_at": min((d["next_at"] for d in mine if later(d)), default=None),
                    "last_error": errors[0]["last_error"] if errors else None})
            return listed[:limit]

    def failures(self, limit: int = 500) -> list[dict[str, Any]]:
        with self._lock:
            items = [{"event_id": e["id"], "mapping": e["mapping"], "errors": e["errors"],
                      "at": e["received_at"], "kind": "failed"}
                     for e in self.rows["events"] if e["status"] == EventStatus.FAILED][-limit:]
            items += [{"event_id": d["event_id"], "mapping": d["mapping"],
                       "last_error": d["last_error"], "failure": d["failure"],
                       "at": d["updated_at"], "kind": "dead"}
                      for d in self.rows["deliveries"]
                      if d["status"] == DeliveryStatus.DEAD][-limit:]
            items += [{"mapping": r["mapping"], "reason": r["sample"], "at": r["last_at"],
                       "count": r["count"], "kind": "refused", "event_id": None}
                      for r in self.rows["refusals"]][-limit:]
            return sorted(items, key=lambda item: item["at"], reverse=True)

    def queue_stats(self, now: float) -> tuple[int, float, int]:
        with self._lock:
            pending = [d["created_at"] for d in self.rows["deliveries"]
                       if d["status"] == DeliveryStatus.PENDING]
            due = [at for at in pending if at <= now]  # not one scheduled for later
            dead = sum(d["status"] == DeliveryStatus.DEAD for d in self.rows["deliveries"])
            return len(pending), max(0.0, now - min(due)) if due else 0.0, dead

    def schedule_stats(self, now: float) -> tuple[int, int]:
        with self._lock:
            rows = self.rows["deliveries"]
            return (sum(d["status"] == DeliveryStatus.PENDING and d["next_at"] > now
                        and d["attempts"] == 0 for d in rows),
                    sum(d["status"] == DeliveryStatus.CANCELLED for d in rows))

    # --- alerts ---------------------------------------------------------------------------

    def alert_facts(self, now: float, window: float, dead_since: float) -> dict[str, Any]:
        with self._lock:
            groups: dict[tuple[str, str | None], dict[str, Any]] = {}
            for d in sorted(self.rows["deliveries"], key=lambda d: d["updated_at"]):
                if d["status"] == DeliveryStatus.DEAD and d["updated_at"] > dead_since:
                    group = groups.setdefault((d["mapping"], d["failure"]), {
                        "mapping": d["mapping"], "failure": d["failure"], "count": 0})
                    group.update(count=group["count"] + 1, last_at=d["updated_at"],
                                 last_error=d["last_error"])
            recent: dict[str, dict[str, Any]] = {}
            for a in self.rows["attempts"]:
                if a["started_at"] > now - window:
                    mapping = self._delivery(a["delivery_id"])["mapping"]  # type: ignore[index]
                    row = recent.setdefault(mapping, {"mapping": mapping, "total": 0,
                                                      "failed": 0, "auth": 0})
                    row["total"] += 1
                    row["failed"] += a["outcome"] != Outcome.DELIVERED
                    row["auth"] += a["failure"] == FailureKind.AUTH
            pending = [d["created_at"] for d in self.rows["deliveries"]
                       if d["status"] == DeliveryStatus.PENDING and d["created_at"] <= now]
            return {"dead": sorted(groups.values(),
                                   key=lambda g: (g["mapping"], g["failure"] or "")),
                    "attempts": sorted(recent.values(), key=lambda r: r["mapping"]),
                    "oldest_pending": max(0.0, now - min(pending)) if pending else None}

    def alert_states(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {key: dict(row) for key, row in self._alert_states.items()}

    def alert_transition(self, key: str, version: int | None, state: dict[str, Any],
                         messages: list[dict[str, Any]], now: float) -> bool:
        with self._lock:
            current = self._alert_states.get(key)
            if (current["version"] if current else None) != version:
                return False
            self._alert_states[key] = {
                "key": key, "kind": state["kind"], "status": state["status"],
                "version": (version or 0) + 1, "since": state["since"],
                "sent_at": state["sent_at"], "last_at": state.get("last_at"),
                "updated_at": now}
            for m in messages:
                self._add("alert_outbox", {
                    "key": key, "channel": m["channel"], "message": m["message"],
                    "status": "pending", "attempts": 0, "created_at": now, "next_at": now,
                    "lease_until": None, "leased_by": None, "finished_at": None,
                    "last_error": None})
            return True

    def alert_claim(self, worker: str, now: float, lease: float,
                    limit: int) -> list[dict[str, Any]]:
        with self._lock:
            due = [m for m in self.rows["alert_outbox"]
                   if m["status"] == "pending" and m["next_at"] <= now
                   and (m["lease_until"] is None or m["lease_until"] <= now)]
            due = sorted(due, key=lambda m: (m["next_at"], m["id"]))[:limit]
            for m in due:
                m.update(lease_until=now + lease, leased_by=worker)
            return [dict(m) for m in sorted(due, key=lambda m: m["id"])]

    def alert_finish(self, message_id: int, worker: str, now: float, *, error: str | None,
                     next_at: float | None) -> bool:
        with self._lock:
            m = next((m for m in self.rows["alert_outbox"] if m["id"] == message_id), None)
            if m is None or m["status"] != "pending" or m["leased_by"] != worker:
                return False
            m.update(attempts=m["attempts"] + 1, lease_until=None, leased_by=None,
                     last_error=error)
            if error is None or next_at is None:
                m.update(status="sent" if error is None else "failed", finished_at=now)
            else:
                m["next_at"] = next_at
            return True

    def mapping_stats(self, names: list[str], since: float) -> dict[str, dict[str, Any]]:
        with self._lock:
            stats = {}
            for name in names:
                mine = [e for e in self.rows["events"] if e["mapping"] == name]
                recent = [e["status"] for e in mine if e["received_at"] >= since]
                stats[name] = {
                    "last_at": max((e["received_at"] for e in mine), default=None),
                    "accepted": recent.count(EventStatus.ACCEPTED),
                    "failed": recent.count(EventStatus.FAILED),
                    "dead": sum(d["mapping"] == name and d["status"] == DeliveryStatus.DEAD
                                and d["updated_at"] >= since for d in self.rows["deliveries"]),
                }
            return stats

    # --- what needs a real store -----------------------------------------------------------

    def chart(self, chart: str, start: float, width: float,
              buckets: int) -> list[tuple[int, str, float]]:
        raise _needs_a_database("chart")

    def replayable(self, *, dead: bool, failed: bool, mapping: str | None,
                   since: float | None) -> list[int]:
        raise _needs_a_database("replayable")

    def replay(self, event_id: int, result: Result, now: float) -> dict[str, int]:
        raise _needs_a_database("replay")

    def purge(self, before: float, *, include_failed: bool = False, dry_run: bool = False,
              batch: int = 1000) -> int:
        raise _needs_a_database("purge")

    def prune_refusals(self, before: float) -> int:
        raise _needs_a_database("prune_refusals")

    def prune_cancels(self, now: float) -> int:
        raise _needs_a_database("prune_cancels")

    def session_key(self) -> str:
        raise _needs_a_database("session_key")

    def open_session(self, session_id: str, now: float, lifetime: float) -> None:
        raise _needs_a_database("open_session")

    def session_alive(self, session_id: str, now: float) -> bool:
        raise _needs_a_database("session_alive")

    def end_session(self, session_id: str) -> None:
        raise _needs_a_database("end_session")

    # --- capture windows and samples, in memory ---------------------------------------------

    def open_window(self, name: str, now: float, until: float) -> dict[str, Any]:
        with self._lock:
            self._close(name, now)
            gone = {w["id"] for w in self.rows["windows"] if w["closes_at"] < now - 7 * 86400}
            self.rows["windows"] = [w for w in self.rows["windows"] if w["id"] not in gone]
            self.rows["samples"] = [r for r in self.rows["samples"]
                                    if r["window_id"] not in gone]
            return dict(self._add("windows", {"name": name, "opened_at": now,
                                              "closes_at": until, "taken": 0}))

    def close_window(self, name: str, now: float) -> bool:
        with self._lock:
            return self._close(name, now)

    def _close(self, name: str, now: float) -> bool:
        closed = False
        for window in self.rows.setdefault("windows", []):
            if window["name"] == name and window["closes_at"] > now:
                window["closes_at"], closed = now, True
        return closed

    def open_windows(self, now: float) -> list[dict[str, Any]]:
        with self._lock:
            return sorted((dict(w) for w in self.rows.get("windows", [])
                           if w["closes_at"] > now), key=lambda w: w["name"])

    def add_sample(self, window_id: int, sample: dict[str, Any], cap: int,
                   now: float) -> int | None:
        with self._lock:
            window = next((w for w in self.rows.get("windows", []) if w["id"] == window_id),
                          None)
            if window is None or window["closes_at"] <= now or window["taken"] >= cap:
                return None
            window["taken"] += 1
            self.rows.setdefault("samples", [])
            row = self._add("samples", {**sample, "window_id": window_id,
                                        "name": window["name"], "received_at": now})
            return int(row["id"])

    def samples(self, name: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        with self._lock:
            rows = [{**{k: v for k, v in r.items() if k != "body"}, "size": len(r["body"])}
                    for r in reversed(self.rows.get("samples", []))
                    if name is None or r["name"] == name]
            return rows[:limit]

    def sample(self, sample_id: int) -> dict[str, Any] | None:
        with self._lock:
            return next(({**r, "size": len(r["body"])} for r in self.rows.get("samples", [])
                         if r["id"] == sample_id), None)


def _needs_a_database(method: str) -> NotImplementedError:
    return NotImplementedError(f"FakeStore.{method}: use a real store (the `store` fixture)")
