"""Webhooks answered in a web process's event loop, their accepts written in batches.

Under the WSGI bridge alone, each webhook went to a pool thread and back, and the pool's
threads took turns at the GIL and at the group commit's locks: per webhook, more CPU went to
those hand-overs than to the mapping. Here a webhook (a /hooks/<name> path with a body of
at most 16 KB, which is nearly all of them; bridge.py sends larger ones to the pool) is
checked, mapped and answered in the loop that read it (intake.Intake.handle); only what
waits on the database leaves it. Accepts go to the store in batches, one batch at a time per
process, each holding every webhook that arrived while the one before was being written:
one hand-over to a pool thread and one commit per batch. The other calls a webhook may make
(a refusal counted, a capture sample, the capture windows read once a second) each go to
the pool as they come: they are rare.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import Executor
from functools import partial
from typing import Any

from relay.model import Receipt, Received
from relay.store import Store
from relay.web.intake import Answer, Intake


class Hooks:
    """Runs `intake`'s steps in the loop, handing its store calls to `pool`."""

    def __init__(self, intake: Intake, pool: Executor):
        self.intake = intake
        self.accepts = Accepts(intake.store, pool)
        self.pool = pool

    async def answer(self, environ: dict[str, Any], name: str) -> Answer:
        steps = self.intake.handle(environ, name)
        accept = self.intake.store.accept
        loop = asyncio.get_running_loop()
        result: Any = None
        error: Exception | None = None
        while True:
            try:
                call = steps.send(result) if error is None else steps.throw(error)
            except StopIteration as done:
                return done.value
            result, error = None, None
            try:
                if call[0] == accept:
                    result = await self.accepts.submit(call[1])
                else:
                    result = await loop.run_in_executor(self.pool, call[0], *call[1:])
            except Exception as exc:
                error = exc


class Accepts:
    """Webhooks handed to the store in batches: while one batch is written, the next one
    gathers. Each submitter gets its own receipt, or its own exception."""

    def __init__(self, store: Store, pool: Executor):
        self.store = store
        self.pool = pool
        self._gathering: list[tuple[Received, asyncio.Future[Receipt]]] = []
        self._writing = False

    async def submit(self, received: Received) -> Receipt:
        future: asyncio.Future[Receipt] = asyncio.get_running_loop().create_future()
        self._gathering.append((received, future))
        if not self._writing:
            self._write()
        return await future

    def _write(self) -> None:
        batch, self._gathering = self._gathering, []
        self._writing = True
        written = asyncio.get_running_loop().run_in_executor(
            self.pool, self.store.accept_many, [received for received, _ in batch])
        written.add_done_callback(partial(self._written, batch))

    def _written(self, batch: list[tuple[Received, asyncio.Future[Receipt]]],
                 written: asyncio.Future[list[Receipt | Exception]]) -> None:
        self._writing = False
        failed = written.exception()
        results = [failed] * len(batch) if failed else written.result()
        for (_, future), result in zip(batch, results, strict=True):
            if future.done():  # its request was cancelled: the webhook is stored all the same
                continue
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)
        if self._gathering:
            self._write()
