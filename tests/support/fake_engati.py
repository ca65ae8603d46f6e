"""A scriptable Engati on 127.0.0.1 for unit tests of the worker and its HTTP client.

Each test gives a handler that takes the request as an `httpx.Request` and returns an
`httpx.Response` (or a coroutine of one); the server runs its own event loop in a thread, so the
calls cross a real socket while the test stays a few lines long.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Callable
from typing import Any

import httpx
from aiohttp import web

Handler = Callable[[httpx.Request], Any]


class FakeEngati:
    def __init__(self) -> None:
        self.handler: Handler = lambda request: httpx.Response(200)
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._stopped: asyncio.Future[None] | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._loop.run_until_complete,
                                        args=(self._serve(),), daemon=True)

    def start(self) -> FakeEngati:
        self._thread.start()
        assert self._ready.wait(10), "the fake Engati did not start"
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._stopped.set_result, None)
        self._thread.join(10)
        self._loop.close()

    async def _serve(self) -> None:
        self._stopped = asyncio.get_running_loop().create_future()
        runner = web.ServerRunner(web.Server(self._answer), shutdown_timeout=0.1)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        self._ready.set()
        await self._stopped
        await runner.cleanup()
        # Handlers still waiting (a slow Engati) end here, not as warnings at exit.
        waiting = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in waiting:
            task.cancel()
        await asyncio.gather(*waiting, return_exceptions=True)

    async def _answer(self, request: web.BaseRequest) -> web.Response:
        seen = httpx.Request(request.method, str(request.url), headers=dict(request.headers),
                             content=await request.read())
        response = self.handler(seen)
        if inspect.isawaitable(response):
            response = await response
        if response is None:  # a handler that only waited (a slow Engati) answers 503
            raise web.HTTPServiceUnavailable
        headers = {k: v for k, v in response.headers.items()
                   if k.lower() not in ("content-length", "transfer-encoding")}
        return web.Response(status=response.status_code, headers=headers,
                            body=response.content)
