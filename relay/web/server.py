"""The gunicorn worker class of the web processes: aiohttp's server in front of the WSGI app.

gthread hands a connection to a thread as soon as it is readable and the thread then reads
the request with no deadline: twenty clients sending a byte every two seconds hold every
thread, and nothing else is answered. Here the event loop reads each request whole, headers
(aiohttp's C parser) and body, while an idle or slow connection costs a file descriptor and a
few kilobytes, never a thread; only a request that has fully arrived goes to the thread pool
(gunicorn's --threads), and the pool's threads are back to work as soon as the app has
returned its answer, which the loop writes out.

connection.py holds the connection with its deadline on a request's head (over private
aiohttp state, checked at import; tested with aiohttp 3.14.5), bridge.py the WSGI bridge
with the body's deadline and budget. This worker is where a web process starts, so it sets
the process up: logging before the app loads, the collector's freeze once it has loaded.

`gunicorn --worker-class relay.web_server.Worker --threads 8 'relay.app:create_app()'`
(the Procfile's web command; `relay serve` runs the same).
"""

from __future__ import annotations

import contextlib
import gc
import os
import resource
from typing import Any

from aiohttp import web
from aiohttp.worker import GunicornWebWorker

from relay.config import Settings
from relay.logs import configure_logging
from relay.web.bridge import Bridge
from relay.web.connection import Server


class Worker(GunicornWebWorker):
    """gunicorn's worker around the loop: heartbeat, max_requests, signals, graceful stop."""

    def init_process(self) -> None:
        # Before the app loads, so that what it logs while loading (the mappings) is
        # formatted and escaped as everything after.
        configure_logging()
        # Every held connection is a file descriptor: allow as many as the hard limit lets,
        # so that a thousand slow clients do not stop the accept()s.
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        wanted = max(soft, 65536) if hard == resource.RLIM_INFINITY else hard
        if soft < wanted:
            with contextlib.suppress(ValueError, OSError):
                resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        super().init_process()  # loads the app, then serves until the worker stops

    def load_wsgi(self) -> None:
        super().load_wsgi()
        # What the app holds from here on lives as long as the process: out of the
        # collector's sight, a full collection no longer walks it, and the webhook it
        # interrupts is not held up for tens of milliseconds.
        gc.freeze()

    def handle_exit(self, sig: int, frame: Any) -> None:
        super().handle_exit(sig, frame)
        self._notify_waiter_done()  # start the graceful stop now, not at the next beat

    async def _run(self) -> None:
        settings = Settings.from_env()
        bridge = Bridge(self.wsgi, settings, self.cfg)
        cfg = self.cfg
        server = Server(
            bridge, head_timeout=settings.request_timeout, logger=self.log,
            keepalive_timeout=cfg.keepalive,
            access_log=self.log.access_log if cfg.accesslog else None,
            access_log_format=self._get_valid_log_format(cfg.access_log_format),
            # gunicorn's limits, 0 meaning its largest
            max_line_size=cfg.limit_request_line or 8190,
            max_field_size=cfg.limit_request_field_size or 8190,
            max_headers=cfg.limit_request_fields or 32768,
            auto_decompress=False)  # the app gets the body as sent, as under gthread
        runner = web.ServerRunner(server, shutdown_timeout=cfg.graceful_timeout * 0.95)
        await runner.setup()
        try:
            ssl_context = self._create_ssl_context(cfg) if cfg.is_ssl else None
            for sock in self.sockets:
                await web.SockSite(runner, sock, ssl_context=ssl_context).start()
            self.booted = True
            while self.alive:
                self.notify()
                if server.requests_count > self.max_requests:
                    self.log.info("Max requests, shutting down: %s", self)
                    break
                if self.ppid != os.getppid():
                    self.log.info("Parent changed, shutting down: %s", self)
                    break
                await self._wait_next_notify()
            self.alive = False
        finally:
            await runner.cleanup()  # stops listening, lets requests in flight finish
            bridge.close()
