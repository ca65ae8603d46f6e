"""The worker's alert chore: judge the conditions, record each transition once in the
database with its messages (the outbox), and send the outbox, paced and retried.

Every worker runs it; the database makes each message happen once: a transition is a
conditional update of the condition's row (the first worker to make it wins, the others'
are refused), and a message is sent by the worker that leased it. A receiver that fails
gets the message again after a backoff (BASE, doubled each time, at most CAP, never sooner
than its Retry-After) until MAX_TRIES or GIVE_UP_AFTER, then it is given up and logged.
While one channel fails, the rest of its messages in that round wait for their lease to
run out rather than being tried against it one after another.

Off the delivery path: `run` calls the store and the channels on a thread of its own, and
every send is bounded by channels.TIMEOUT, so a receiver that hangs slows only alerts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

from relay.alerts import channels, messages, rules
from relay.alerts.targets import Targets, Thresholds, targets, thresholds
from relay.config import Settings
from relay.errors import AlertError, RelayError
from relay.sources.registry import Registry
from relay.store import Store

log = logging.getLogger("relay.alerts")

CHECK_EVERY = 30.0  # seconds between two checks of the conditions
SEND_EVERY = 5.0  # seconds between two rounds of the outbox
BATCH = 5  # messages a round at most: at most one a second to a receiver (Slack's pace)
LEASE = 60.0  # seconds a worker holds a message it is sending (> every send timeout)
BASE, CAP = 10.0, 600.0  # seconds: the first retry's wait and the longest
MAX_TRIES = 10
GIVE_UP_AFTER = 6 * 3600.0  # seconds after a message was queued


class Alerter:
    def __init__(self, store: Store, settings: Settings, registry: Registry | None, *,
                 clock: Callable[[], float] = time.time, name: str = "alerter",
                 http: Any = None):
        """`http`: an httpx.Client for the webhook channel (tests); by default one per send."""
        self.sender = Sender(settings, clock=clock, http=http)
        self.store = store
        self.registry = registry
        self.clock = clock
        self.name = name
        self.limits: Thresholds = thresholds(settings)
        self.targets = self.sender.targets
        self._secrets = [s for s in (settings.admin_token, settings.secret_key,
                                     settings.alert_url, settings.smtp_url,
                                     self.targets.smtp and self.targets.smtp.password,
                                     os.environ.get("ENGATI_API_KEY")) if s]
        self._executor: ThreadPoolExecutor | None = None

    @classmethod
    def of(cls, store: Store, settings: Settings, registry: Registry | None,
           **kwargs: Any) -> Alerter | None:
        """An alerter when a channel is configured (RELAY_ALERT_URL, RELAY_ALERT_EMAIL)."""
        if not (settings.alert_url or settings.alert_email):
            return None
        return cls(store, settings, registry, **kwargs)

    # --- judging ---------------------------------------------------------------------------

    def check(self) -> int:
        """Judge the conditions now and record what changed; how many messages this worker
        queued (0 when another worker made the same transitions first)."""
        now = self.clock()
        facts = self.store.alert_facts(now, self.limits.window, now - self.limits.every)
        broken: list[dict[str, str]] = []
        locked: list[tuple[str, str]] = []
        if self.registry is not None:
            broken = self.registry.broken()
            locked = [(e.name, e.locked) for e in self.registry.endpoints() if e.locked]
        active = rules.conditions(facts, broken, locked, self.limits)
        queued = 0
        secrets = self.secrets()
        for change in rules.decide(active, self.store.alert_states(), now, self.limits.every):
            version = (change.version or 0) + 1
            out = []
            if change.message is not None:
                message = messages.payload(
                    change.condition, change.message, link=self.limits.link, at=now,
                    since=change.state["since"] if change.message == rules.FIRING else None,
                    message_id=f"{change.key}#{version}", secrets=secrets)
                out = [{"channel": c, "message": message} for c in self.targets.channels]
            if self.store.alert_transition(change.key, change.version, change.state, out, now):
                queued += len(out)
                log.info("alert %s %s: %s", change.key, change.message or change.state["status"],
                         change.condition.title)
        return queued

    def secrets(self) -> list[str]:
        """What no message may carry: the relay's secrets and every mapping's."""
        found = list(self._secrets)
        if self.registry is not None:
            for endpoint in self.registry.endpoints():
                found += [*endpoint.secrets, *filter(None, [endpoint.verify_token])]
                if endpoint.mapping.engati.api_key:
                    found.append(endpoint.mapping.engati.api_key)
        return found

    # --- sending ---------------------------------------------------------------------------

    def send_due(self) -> int:
        """Send the messages due now (a round of at most BATCH); how many went out. Each is
        claimed just before it is sent, so that its lease covers its own send only (five
        slow sends in a row outlasted one lease, and another worker sent them again)."""
        sent = 0
        failed_channels: set[str] = set()
        for _ in range(BATCH):
            claimed = self.store.alert_claim(self.name, self.clock(), LEASE, 1)
            if not claimed:
                break
            row = claimed[0]
            channel = row["channel"]
            if channel in failed_channels:
                continue  # its lease runs out: tried again then, not now against a failure
            try:
                self.sender.send(channel, row["message"])
            except AlertError as exc:
                failed_channels.add(channel)
                self._failed(row, str(exc), exc.retry_after)
                continue
            except Exception as exc:  # a bug: counted as a try, never a stuck message; only
                # its type is kept, as its text could quote the channel's URL (a secret)
                failed_channels.add(channel)
                self._failed(row, f"the channel failed unexpectedly ({type(exc).__name__})",
                             None)
                continue
            self.store.alert_finish(row["id"], self.name, self.clock(), error=None,
                                    next_at=None)
            sent += 1
            log.info("alert %s %s sent by %s", row["key"], row["message"]["state"], channel)
        return sent

    def _failed(self, row: dict[str, Any], error: str, wait: float | None) -> None:
        now = self.clock()
        tries = row["attempts"] + 1
        if tries >= MAX_TRIES or now - row["created_at"] >= GIVE_UP_AFTER:
            self.store.alert_finish(row["id"], self.name, now, error=error, next_at=None)
            log.error("alert %s %s by %s given up after %d tries: %s", row["key"],
                      row["message"]["state"], row["channel"], tries, error)
            return
        delay = min(CAP, BASE * 2.0 ** (tries - 1))
        if wait is not None:
            delay = max(delay, min(wait, CAP))
        self.store.alert_finish(row["id"], self.name, now, error=error, next_at=now + delay)
        log.warning("alert %s %s by %s failed (try %d), again in %.0fs: %s", row["key"],
                    row["message"]["state"], row["channel"], tries, delay, error)

    # --- in the worker ---------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Check and send until `stop`, on a thread of the alerter's own. Nothing it meets
        (a database away, a receiver down, a bug) stops the worker."""
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="relay-alerts")
        loop = asyncio.get_running_loop()
        log.info("alerts: %s", "; ".join(self.sender.describe(c) for c in self.targets.channels))
        checked = float("-inf")
        try:
            while not stop.is_set():
                try:
                    if self.clock() - checked >= CHECK_EVERY:
                        checked = self.clock()
                        await loop.run_in_executor(self._executor, self.check)
                    await loop.run_in_executor(self._executor, self.send_due)
                except RelayError as exc:
                    log.warning("alerts: %s", exc)
                except Exception:
                    log.exception("alerts: unexpected error (delivery goes on)")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=SEND_EVERY)
        finally:
            # A send under way is not waited for (its timeouts bound it): stopping the
            # worker must not wait on a receiver.
            self._executor.shutdown(wait=False, cancel_futures=True)

    def join(self) -> None:
        """Wait for a send still under way after `run` ended (tests, before the store goes)."""
        if self._executor is not None:
            self._executor.shutdown(wait=True)


class Sender:
    """The configured channels: one message sent by one of them now (`send`), or a test
    message by each (`test`, for `relay alerts test`)."""

    def __init__(self, settings: Settings, *, clock: Callable[[], float] = time.time,
                 http: Any = None):
        """`http`: an httpx.Client for the webhook channel (tests); by default one per send."""
        self.targets: Targets = targets(settings)
        self.link = thresholds(settings).link
        self.clock = clock
        self.http = http

    def send(self, channel: str, message: dict[str, Any]) -> str:
        """Send one message by one channel now; what happened, or AlertError."""
        t = self.targets
        if channel == "webhook" and t.url:
            body = messages.slack(message) if t.slack else message
            status = channels.post_json(t.url, body, client=self.http, now=self.clock())
            return f"HTTP {status}"
        if channel == "email" and t.emails and t.smtp is not None:
            channels.send_mail(t.smtp, messages.email(message, t.sender, t.emails), t.emails)
            return f"accepted by {t.smtp.where()}"
        raise AlertError(f"the {channel} channel is no longer configured")

    def test(self) -> list[tuple[str, str | None, str]]:
        """One test message through every channel now: (channel, error or None, what
        happened), for `relay alerts test`."""
        now = self.clock()
        cond = rules.Condition("test", "test", "Test alert from relay",
                               "`relay alerts test`: alerts of this relay reach you here.")
        message = messages.payload(cond, "test", link=self.link, at=now, since=None,
                                   message_id=f"test#{int(now)}")
        results: list[tuple[str, str | None, str]] = []
        for channel in self.targets.channels:
            try:
                results.append((channel, None, self.send(channel, message)))
            except AlertError as exc:
                results.append((channel, str(exc), ""))
        return results

    def describe(self, channel: str) -> str:
        """A channel as messages may name it: no URL path, no credentials."""
        t = self.targets
        if channel == "webhook":
            host = urlsplit(t.url).hostname
            return f"webhook ({'Slack' if t.slack else messages.SCHEMA}) to {host}"
        where = t.smtp.where() if t.smtp else "?"
        return f"email to {', '.join(t.emails)} via {where}"
