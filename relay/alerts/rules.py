"""The alert rules, pure: what the database and the registry say -> the conditions active
now (`conditions`), and given each condition's stored state, what to change and announce
(`decide`). No I/O and no clock of their own: `now` is passed in.

A condition is keyed by what a person fixes once: `dead:<mapping>:<failure kind>`,
`failure_rate:<mapping>`, `queue_age`, `mapping_broken:<name>`, `mapping_locked:<name>`,
`engati_auth`. It fires once when it becomes active and resolves once when it clears; a
dead group fires again, at most once per RELAY_ALERT_EVERY, while more deliveries die.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from relay.alerts.targets import Thresholds

FIRING = "firing"
OK = "ok"


@dataclass(frozen=True)
class Condition:
    key: str
    kind: str
    title: str
    text: str
    mapping: str | None = None
    failure: str | None = None
    count: int | None = None
    last_error: str | None = None
    last_at: float | None = None  # dead: the newest death (a repeat needs a newer one)
    mappings: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class Transition:
    """A state to write if the condition's row is still at `version`, and the message to
    queue with it ("firing", "resolved", or None)."""

    key: str
    version: int | None
    state: dict[str, Any]
    message: str | None
    condition: Condition


def conditions(facts: dict[str, Any], broken: list[dict[str, str]],
               locked: list[tuple[str, str]], limits: Thresholds) -> dict[str, Condition]:
    """The conditions active now. `facts` is Store.alert_facts (dead since RELAY_ALERT_EVERY
    ago, attempts of the last RELAY_ALERT_WINDOW), `broken` Registry.broken(), `locked`
    (endpoint, why) for endpoints waiting on a secret."""
    found: list[Condition] = []
    every, window = _span(limits.every), _span(limits.window)
    for group in facts["dead"]:
        mapping, failure, count = group["mapping"], group["failure"] or "unknown", group["count"]
        found.append(Condition(
            f"dead:{mapping}:{failure}", "dead",
            f"{count} deliveries of {mapping} went dead ({failure})" if count != 1 else
            f"1 delivery of {mapping} went dead ({failure})",
            f"{count} went dead in the last {every}; replay them from the failures inbox "
            f"or with `relay replay --dead --mapping {mapping}` once the cause is fixed.",
            mapping, failure, count, group["last_error"], group["last_at"]))
    auth = [row for row in facts["attempts"] if row["auth"]]
    if auth:
        names = tuple(row["mapping"] for row in auth)
        total = sum(row["auth"] for row in auth)
        found.append(Condition(
            "engati_auth", "engati_auth", "Engati refuses the API key (HTTP 401/403)",
            f"{total} call(s) in the last {window} were refused as unauthorised "
            f"({', '.join(names)}): check ENGATI_API_KEY (or the mapping's engati.api_key).",
            None, "auth", total, mappings=names))
    for row in facts["attempts"]:
        total, failed = row["total"], row["failed"]
        if total >= limits.min_attempts and failed / total > limits.failure_rate:
            found.append(Condition(
                f"failure_rate:{row['mapping']}", "failure_rate",
                f"{failed / total:.0%} of {row['mapping']}'s calls to Engati fail",
                f"{failed} of {total} attempts in the last {window} failed (the alert is "
                f"above {limits.failure_rate:.0%}).",
                row["mapping"], None, failed))
    age = facts["oldest_pending"]
    if age is not None and age > limits.queue_age:
        found.append(Condition(
            "queue_age", "queue_age", f"A delivery has waited {_span(age)}",
            f"The oldest pending delivery is {_span(age)} old (the alert is above "
            f"{_span(limits.queue_age)}): Engati may be failing, or no worker is keeping up.",
            count=int(age)))
    for item in broken:
        found.append(Condition(
            f"mapping_broken:{item['name']}", "mapping_broken",
            f"Mapping {item['name']} does not load",
            # The error (which may quote the file) only as last_error, which is scrubbed.
            "The file has a problem (the last error says where); the last good version, if "
            "any, still serves, and `relay check` says more.", item["name"],
            last_error=item["error"]))
    for name, why in locked:
        found.append(Condition(
            f"mapping_locked:{name}", "mapping_locked", f"Mapping {name} waits on a secret",
            f"/hooks/{name} answers 503 until its secret is set (the last error says which).",
            name, last_error=why))
    return {c.key: c for c in found}


def decide(active: dict[str, Condition], states: dict[str, dict[str, Any]], now: float,
           every: float) -> list[Transition]:
    """What to change: an active condition not firing fires (unless a message for it went
    out less than `every` ago: it fires once that has passed); a firing dead group announces
    newer deaths at most once per `every`; a firing condition no longer active resolves."""
    changes = []
    for key, cond in active.items():
        state = states.get(key)
        version = None if state is None else state["version"]
        if state is None or state["status"] != FIRING:
            if state is not None and state["sent_at"] is not None and (
                    now - state["sent_at"] < every):
                continue  # it just resolved: no flapping faster than RELAY_ALERT_EVERY
            changes.append(Transition(key, version, _state(cond.kind, FIRING, now, now, cond),
                                      FIRING, cond))
        elif (cond.kind == "dead" and cond.last_at is not None
              and cond.last_at > (state["last_at"] or 0)
              and now - (state["sent_at"] or 0) >= every):
            changes.append(Transition(key, version,
                                      _state(cond.kind, FIRING, state["since"], now, cond),
                                      FIRING, cond))
    for key, state in states.items():
        if state["status"] == FIRING and key not in active:
            cond = resolved(key, state["kind"], now - state["since"])
            changes.append(Transition(key, state["version"],
                                      _state(state["kind"], OK, now, now, cond), "resolved",
                                      cond))
    return changes


def resolved(key: str, kind: str, lasted: float) -> Condition:
    """The condition a recovery message is about, from its key alone."""
    parts = key.split(":")
    mapping = parts[1] if len(parts) > 1 else None
    failure = parts[2] if len(parts) > 2 else None
    titles = {
        "dead": f"Deliveries of {mapping} no longer go dead ({failure})",
        "engati_auth": "Engati accepts the API key again",
        "failure_rate": f"{mapping}'s calls to Engati succeed again",
        "queue_age": "The queue is moving again",
        "mapping_broken": f"Mapping {mapping} loads again",
        "mapping_locked": f"Mapping {mapping} has its secret",
    }
    text = f"Cleared after {_span(lasted)}."
    if kind == "dead":
        text += (" Deliveries that went dead before wait in the failures inbox for a replay.")
    return Condition(key, kind, titles.get(kind, f"{key} cleared"), text, mapping,
                     failure if kind == "dead" else None)


def _state(kind: str, status: str, since: float, sent_at: float,
           cond: Condition) -> dict[str, Any]:
    return {"kind": kind, "status": status, "since": since, "sent_at": sent_at,
            "last_at": cond.last_at}


def _span(seconds: float) -> str:
    """15m, 2h, 90s: a duration as people write it."""
    seconds = max(0, int(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and (seconds % size == 0 or seconds >= 10 * size):
            return f"{seconds // size}{unit}"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"
