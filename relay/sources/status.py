"""A mapping's state: the one answer the console's mappings page, `/readyz` and `relay check`
give, so that the three always agree.

    ok            it serves: verified (or not, as the file says) and Engati is configured
    broken        the file does not load: the first problem, with its line; a last good
                  version may still serve (a reload that failed)
    locked        waiting on a secret: `secret: ${NAME}` is unset, /hooks/<name> answers 503
    unconfigured  it serves, but Engati settings are missing (ENGATI_*): deliveries fail, are
                  retried and go dead until they are set

One state per file, the first that applies in that order; a locked mapping whose Engati
settings are missing too says so in its detail.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from relay.errors import MappingLoadError, Problem
from relay.mapping import unset_engati
from relay.sources.endpoint import Endpoint

OK, BROKEN, LOCKED, UNCONFIGURED = "ok", "broken", "locked", "unconfigured"
STATES = (OK, BROKEN, LOCKED, UNCONFIGURED)

# What a file loaded to: an endpoint, the load's problems, or the problem of a file that
# claims an endpoint name another file already serves (a duplicate).
Loaded = Endpoint | MappingLoadError | Problem


@dataclass(frozen=True)
class MappingState:
    name: str  # the endpoint name: /hooks/<name>
    file: str  # the file's name inside the mappings folder, never the machine's path
    state: str  # one of STATES
    detail: str = ""  # why, in a sentence: the error, the variable, the settings
    line: int | None = None  # broken: the line of the first problem
    missing: tuple[str, ...] = ()  # locked: the unset variables; unconfigured: ENGATI_*
    serving: bool = True  # whether /hooks/<name> is answered by a mapping (an old one, maybe)
    warnings: tuple[str, ...] = ()  # the static checks' warnings (`relay check` prints them)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "missing": list(self.missing), "warnings": list(self.warnings)}


def state_of(file: str | Path, loaded: Loaded, *,
             last_good: Endpoint | None = None) -> MappingState:
    """The state of one mapping file from what loading it gave; `last_good` is the version
    that still serves when a reload broke it."""
    file = Path(file)
    if isinstance(loaded, MappingLoadError | Problem):
        problems = [loaded] if isinstance(loaded, Problem) else loaded.problems
        first = problems[0] if problems else None
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        if last_good is not None:
            more += "; the last good version still serves"
        return MappingState(file.stem, file.name, BROKEN, first_problem(first, file) + more,
                            line=first.line if first else None, serving=last_good is not None)
    endpoint = loaded
    warnings = tuple(f"{file.name}:{w.line}: {w.key}: {w.message}" if w.line
                     else f"{file.name}: {w.message}" for w in endpoint.mapping.warnings)
    # A mapping that only cancels (no phone, no flows) never calls Engati: nothing missing.
    engati = tuple(f"ENGATI_{key.upper()}" for key in endpoint.mapping.engati.missing()
                   if endpoint.mapping.phone is not None)
    if endpoint.locked:
        also = f"; Engati settings missing too: {', '.join(engati)}" if engati else ""
        return MappingState(endpoint.name, file.name, LOCKED,
                            f"waiting on a secret: {endpoint.locked}; /hooks/{endpoint.name} "
                            f"answers 503 until it is{also}",
                            missing=endpoint.waiting_on, serving=False, warnings=warnings)
    if engati:
        return MappingState(endpoint.name, file.name, UNCONFIGURED,
                            unset_engati(endpoint.mapping) or "", missing=engati,
                            warnings=warnings)
    return MappingState(endpoint.name, file.name, OK, warnings=warnings)


def folder_states(files: Iterable[tuple[Path, Loaded, Endpoint | None]]) -> list[MappingState]:
    """The states of a folder's files (Registry.files() gives them), by name then file."""
    return sorted((state_of(file, loaded, last_good=good) for file, loaded, good in files),
                  key=lambda s: (s.name, s.file))


def first_problem(problem: Problem | None, file: Path) -> str:
    """A problem as `file:line: key: message`, the file named as it is inside its folder."""
    if problem is None:
        return f"{file.name}: cannot be loaded"
    where = f"{file.name}:{problem.line}" if problem.line else file.name
    return f"{where}: {problem.key}: {problem.message}" if problem.key else (
        f"{where}: {problem.message}")


def summary(states: list[MappingState], folder: str | Path) -> list[tuple[bool, str]]:
    """What start-up says of a folder, once: (is it a warning, the line). Mappings waiting on
    a secret are one line, not a warning each: a fresh deployment serves few of the examples'
    senders, and the others are not a problem until someone posts to them."""
    serving = [s.name for s in states if s.state in (OK, UNCONFIGURED)]
    lines = [(False, f"loaded {len(states)} mapping(s) from {folder}: "
                     f"{len(serving)} serving ({', '.join(serving) or 'none'})")]
    locked = [s for s in states if s.state == LOCKED]
    if locked:
        names = ", ".join(s.name for s in locked)
        variables = ", ".join(dict.fromkeys(v for s in locked for v in s.missing))
        lines.append((False, f"waiting on a secret: {names} (set {variables}); they answer 503 "
                             "until then"))
    unconfigured: dict[tuple[str, ...], list[str]] = {}
    for s in states:
        engati = s.missing if s.state == UNCONFIGURED else ()
        if engati:
            unconfigured.setdefault(engati, []).append(s.name)
    for engati, waiting in unconfigured.items():
        lines.append((True, f"Engati settings missing for {', '.join(waiting)}: set "
                            f"{', '.join(engati)}; until then their deliveries fail, are "
                            "retried and go dead (after RELAY_MAX_ATTEMPTS attempts or "
                            "RELAY_MAX_AGE)"))
    for s in states:
        if s.state == BROKEN:
            lines.append((True, f"mapping {s.name} is broken: {s.detail}"))
    return lines
