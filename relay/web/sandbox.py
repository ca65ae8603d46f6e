"""Running code on text from a browser in a child process bounded in time and memory.

The console's playground evaluates YAML and JMESPath that a logged-in user typed. Their cost
is not bounded by their length (a projection over a flattened multi-select doubles its work
at every step), and Python cannot stop a thread that is busy, so the work runs in a child
forked from a small server process (multiprocessing's forkserver, with the relay's mapping
modules loaded once): the child gets an address-space limit, and is killed when its time is
up. The web process only waits, and answers a clear error rather than hanging or dying.
"""

from __future__ import annotations

import json
import multiprocessing
import resource
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from relay.errors import RelayError

SECONDS = 3.0  # wall-clock time a run may take
MEMORY = 1024 * 1024 * 1024  # bytes of address space the child may map
MAX_ANSWER = 2 * 1024 * 1024  # bytes of JSON a run may answer
RUNS = 2  # runs one web process does at once; more wait their turn for a moment, then 429

_context = multiprocessing.get_context("forkserver")
_context.set_forkserver_preload(["relay.web.trial"])
_slots = threading.BoundedSemaphore(RUNS)


class SandboxError(RelayError):
    """A run that did not finish: too slow, too large, or it died. `status` is the HTTP
    status that says so (400, 413 or 429)."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def run(function: Callable[[Any], Any], argument: Any, *, seconds: float | None = None) -> Any:
    """`function(argument)` in a bounded child; its JSON-able result, or SandboxError."""
    seconds = SECONDS if seconds is None else seconds
    # No waiting for a slot: a request that waited would hold one of the web process's
    # threads, which the webhooks need too (24 slow runs at once held webhooks 5 s).
    if not _slots.acquire(blocking=False):
        raise SandboxError("the playground is busy with other runs: try again in a moment",
                           429)
    try:
        return _run(function, argument, seconds)
    finally:
        _slots.release()


def _run(function: Callable[[Any], Any], argument: Any, seconds: float) -> Any:
    mine, theirs = _context.Pipe(duplex=False)
    child = _context.Process(target=_child, args=(theirs, function, argument), daemon=True)
    child.start()
    theirs.close()
    try:
        if not mine.poll(seconds):
            raise SandboxError(f"the mapping took longer than {seconds:g} seconds on this body "
                               "(an expression that multiplies its work?): simplify it")
        try:
            kind, payload = mine.recv()
        except EOFError:
            raise SandboxError("the mapping's run stopped without an answer (it used too "
                               "much memory?): simplify it or try a smaller body") from None
    finally:
        mine.close()
        if child.is_alive():
            child.kill()
        child.join(1.0)
    if kind == "error":
        raise SandboxError(payload["message"], payload["status"])
    return json.loads(payload)


def _child(answer: Connection, function: Callable[[Any], Any], argument: Any) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))
    try:
        text = json.dumps(function(argument))
    except MemoryError:
        answer.send(("error", {"message": f"the mapping needed more than {MEMORY >> 20} MB "
                                          "on this body: simplify it", "status": 413}))
        return
    except RecursionError:
        answer.send(("error", {"message": "the mapping or body nests too deeply",
                               "status": 400}))
        return
    except Exception as exc:  # a bug of ours: said, never a child that dies in silence
        answer.send(("error", {"message": f"the mapping could not be tried ({exc!r})",
                               "status": 400}))
        return
    if len(text) > MAX_ANSWER:
        answer.send(("error", {"message": f"the result is larger than {MAX_ANSWER >> 20} MB: "
                                          "make the body or the attributes smaller",
                               "status": 413}))
        return
    answer.send(("ok", text))
