"""The worker's lookup loop: claim due lookups, fetch each, map its answer, record it.

It runs beside the delivery loop on the worker's event loop, and only while some loaded
mapping has a `lookup:` (a relay without one pays nothing for it). A fetch that fails is
retried with the deliveries' backoff and limits (RELAY_RETRY_BASE, RELAY_RETRY_CAP,
RELAY_MAX_ATTEMPTS, RELAY_MAX_AGE); one that cannot succeed (gone, refused) is dead at once,
and its event failed, for `relay replay` once the cause is fixed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

import aiohttp
from prometheus_client import Counter

from relay.delivery.policy import RetryPolicy
from relay.delivery.store_thread import StoreThread
from relay.errors import BodyError, FieldError, LookupFailed, StoreUnavailable
from relay.lookup.fetch import fetch
from relay.mapping import Result, evaluate_fetched
from relay.model import ClaimedLookup, Looked, LookupStatus
from relay.sources.registry import Registry

log = logging.getLogger("relay.lookup")
LOOKUPS = Counter("relay_lookups", "Lookups tried, by mapping and outcome (done, skipped, "
                  "failed, retry, dead).", ["mapping", "outcome"])
BATCH = 32  # lookups claimed (and fetched at once) per round


class Lookups:
    """`on_planned` is called when a lookup's answer planned a delivery, so that the
    delivery loop claims it now rather than at its next poll."""

    def __init__(self, db: StoreThread, registry: Registry, policy: RetryPolicy, *,
                 worker: str, lease: float, poll_interval: float,
                 clock: Callable[[], float] = time.time,
                 on_planned: Callable[[], None] = lambda: None):
        self.db = db
        self.registry = registry
        self.policy = policy
        self.worker = worker
        self.lease = lease
        self.poll_interval = poll_interval
        self.clock = clock
        self.on_planned = on_planned

    async def run(self, stop: asyncio.Event) -> None:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
            while not stop.is_set():
                claimed = await self._claim() if self._wanted() else []
                if claimed:
                    await asyncio.gather(*(self._guarded(session, c) for c in claimed))
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.poll_interval)

    async def run_once(self) -> int:
        """Claim what is due and try it all; how many were tried (for tests)."""
        async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
            claimed = await self._claim()
            await asyncio.gather(*(self._guarded(session, c) for c in claimed))
        return len(claimed)

    def _wanted(self) -> bool:
        return any(e.mapping.lookup is not None for e in self.registry.endpoints())

    async def _claim(self) -> list[ClaimedLookup]:
        try:
            return await self.db.call(self.db.store.claim_lookups, self.worker, BATCH,
                                      self.clock(), self.lease)
        except StoreUnavailable as exc:
            log.warning("cannot claim lookups: %s", exc)
            return []

    async def _guarded(self, session: aiohttp.ClientSession, claimed: ClaimedLookup) -> None:
        """`_one`, whose failure (a bug) must not end the loop: the lookup's lease runs out
        and it is tried again."""
        try:
            await self._one(session, claimed)
        except Exception:
            log.exception("lookup %d failed unexpectedly; it is tried again when its lease "
                          "runs out", claimed.id)

    async def _one(self, session: aiohttp.ClientSession, claimed: ClaimedLookup) -> None:
        started = self.clock()
        begun = time.perf_counter()
        came_to = await self._fetch(session, claimed)
        ms = (time.perf_counter() - begun) * 1000
        now = self.clock()
        looked = (self._judge(claimed, came_to, started, ms, now)
                  if isinstance(came_to, LookupFailed)
                  else self._map(claimed, came_to, started, ms))
        try:
            kept = await self.db.call(self.db.store.finish_lookup, looked, self.worker, now)
        except Exception as exc:  # the lease runs out and it is tried again: at-least-once
            log.error("lookup %d not recorded: %s", claimed.id, exc)
            return
        outcome = "retry" if looked.status == LookupStatus.PENDING else str(looked.status)
        LOOKUPS.labels(claimed.mapping, outcome).inc()
        log.info("lookup id=%d event=%d mapping=%s try=%d outcome=%s http=%s ms=%.0f%s%s",
                 claimed.id, claimed.event_id, claimed.mapping, claimed.attempts + 1, outcome,
                 looked.tried["http"] if looked.tried["http"] is not None else "-", ms,
                 f" retry_in={looked.next_at - now:.1f}s" if looked.next_at else "",
                 f" error={looked.error!r}" if looked.error else "")
        if not kept:
            log.warning("lookup %d: the lease was lost before the outcome was recorded",
                        claimed.id)
        elif looked.result is not None and looked.result.deliveries:
            self.on_planned()

    async def _fetch(self, session: aiohttp.ClientSession,
                     claimed: ClaimedLookup) -> object | LookupFailed:
        """The answer, or why there is none. A mapping that lost its lookup, or waits for its
        token, is a failure worth retrying: the file may be fixed meanwhile."""
        endpoint = self.registry.get(claimed.mapping)
        if endpoint is None or endpoint.mapping.lookup is None:
            return LookupFailed(f"mapping {claimed.mapping!r} has no lookup: any more: restore "
                                "it, or `relay replay` the event once mapped otherwise",
                                retryable=True)
        if endpoint.locked:
            return LookupFailed(f"the mapping is not ready: {endpoint.locked}", retryable=True)
        lookup = endpoint.mapping.lookup
        try:
            return await fetch(session, claimed.url, lookup.token, lookup.timeout,
                               endpoint.preset, self.clock())
        except LookupFailed as exc:
            return exc

    def _judge(self, claimed: ClaimedLookup, failed: LookupFailed, started: float,
               ms: float, now: float) -> Looked:
        """A failed fetch: due again after a backoff, or dead (as a delivery would be)."""
        error, next_at = str(failed), None
        if failed.retryable:
            next_at, error = self.policy.again(claimed.attempts + 1, claimed.created_at, now,
                                               failed.retry_after, error)
        status = LookupStatus.DEAD if next_at is None else LookupStatus.PENDING
        return Looked(claimed.id, _tried(started, ms, failed.status, error), status, next_at,
                      error)

    def _map(self, claimed: ClaimedLookup, answer: object, started: float,
             ms: float) -> Looked:
        """A fetched answer, mapped with the mapping as it is now."""
        endpoint = self.registry.get(claimed.mapping)
        assert endpoint is not None  # _fetch found it a moment ago, and endpoints are kept
        try:
            envelope = endpoint.preset.envelope(claimed.body, claimed.headers, claimed.query)
            result = evaluate_fetched(endpoint.mapping, envelope, claimed.item,
                                      endpoint.preset.looked_up(answer), claimed.created_at)
        except BodyError as exc:  # the mapping's source changed since it was stored
            return Looked(claimed.id, _tried(started, ms, 200, str(exc)), LookupStatus.FAILED,
                          error=str(exc), result=Result(errors=(FieldError("body", str(exc)),)))
        status = (LookupStatus.DONE if result.deliveries else
                  LookupStatus.FAILED if result.errors else LookupStatus.SKIPPED)
        error = "; ".join(map(str, result.errors)) or None
        return Looked(claimed.id, _tried(started, ms, 200, error), status, error=error,
                      result=result)


def _tried(at: float, ms: float, http: int | None, error: str | None) -> dict[str, object]:
    return {"at": at, "ms": round(ms, 1), "http": http, "error": error}
