"""Commands that run the relay: serve, worker, db upgrade, sandbox."""

from __future__ import annotations

import asyncio
import errno
import gc
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import click

from relay.config import Settings
from relay.delivery.engati import EngatiClient
from relay.delivery.sandbox import Sandbox, make_server
from relay.delivery.worker import Worker
from relay.errors import RelayError
from relay.logs import configure_logging
from relay.mapping.load import engati_settings
from relay.sources.registry import Registry
from relay.store import open_store


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0 for every interface).")
@click.option("--port", type=int, default=lambda: Settings.from_env().port,
              help="Port to listen on [default: $PORT, else 8000].")
@click.option("--web-workers", type=int, default=2, show_default=True,
              help="gunicorn web processes.")
def serve(host: str, port: int, web_workers: int) -> None:
    """Run the relay on one machine: web server and delivery worker, schema created first."""
    _check_free(host, port)
    configure_logging()
    settings = Settings.from_env()
    open_store(settings.database_url, timeout=settings.db_timeout).upgrade()
    registry = Registry(settings.mappings)
    # Refuse to start on a broken mapping; say here, once, what loaded and what waits on a
    # secret: the children (RELAY_QUIET_START) log it at debug level only.
    registry.load()
    click.echo(f"relay: http://{host}:{port}/hooks/<mapping>  database "
               f"{settings.safe_database_url()}  mappings {settings.mappings}/", err=True)
    # Metrics of every process, added up at /metrics (prometheus_client's multiprocess mode).
    metrics_dir = tempfile.mkdtemp(prefix="relay-metrics-")
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": metrics_dir, "RELAY_QUIET_START": "1"}
    # relay.web_server.Worker reads each request whole in an event loop before a thread runs
    # it, so slow clients hold no thread (docs/operations.md, "Slow and idle clients").
    web = subprocess.Popen([
        sys.executable, "-m", "gunicorn", "--bind", f"{host}:{port}",
        "--workers", str(web_workers), "--worker-class", "relay.web_server.Worker",
        "--threads", "8", "--graceful-timeout", "10", "relay.app:create_app()",
    ], env=env)
    worker = subprocess.Popen([sys.executable, "-m", "relay", "worker"], env=env)
    children = (web, worker)
    stopping: list[int] = []

    def stop(signum: int, _frame: object) -> None:
        if stopping:  # a second signal must not interrupt the children's graceful exit
            return
        stopping.append(signum)
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    # Either child ending ends both: a relay that takes webhooks but never delivers them
    # (or the reverse) must not look alive.
    while all(child.poll() is None for child in children):
        time.sleep(0.2)
    stop(signal.SIGTERM, None)
    codes = [child.wait() for child in children]
    shutil.rmtree(metrics_dir, ignore_errors=True)
    sys.exit(max(abs(c) for c in codes) if any(codes) else 0)


@click.command()
def worker() -> None:
    """Deliver stored webhooks to Engati until SIGTERM."""
    configure_logging()
    settings = Settings.from_env()
    registry = Registry(settings.mappings)
    registry.load(announce=not settings.quiet_start, strict=not settings.quiet_start)
    store = open_store(settings.database_url, timeout=settings.db_timeout, worker=True)
    gc.freeze()  # as in the web app: full collections skip what lives as long as the process

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        engati = EngatiClient(connections=settings.concurrency, timeout=settings.engati_timeout)
        fallback = engati_settings({}, os.environ)  # for mappings removed since their events
        await Worker(store, settings, registry, engati, fallback=fallback).run(
            stop, settings.shutdown_grace)

    asyncio.run(run())
    store.dispose()


@click.group()
def db() -> None:
    """Database schema commands."""


@db.command()
def upgrade() -> None:
    """Create or upgrade the schema (idempotent)."""
    settings = Settings.from_env()
    before, after = open_store(settings.database_url, timeout=settings.db_timeout).upgrade()
    where = settings.safe_database_url()
    if before is None:
        click.echo(f"schema created at revision {after} ({where})")
    elif before != after:
        click.echo(f"schema upgraded from revision {before} to {after} ({where})")
    else:
        click.echo(f"schema is up to date at revision {after} ({where})")


@click.command()
@click.option("--port", type=int, default=8081, show_default=True)
@click.option("--api-key", default=None, help="Refuse other keys with 401, as Engati does.")
def sandbox(port: int, api_key: str | None) -> None:
    """Run an Engati stand-in on 127.0.0.1 that prints every call it receives."""
    server = make_server(Sandbox(api_key, echo=lambda line: click.echo(line)), port=port)
    click.echo(f"Engati sandbox on http://127.0.0.1:{server.server_port}: "
               f"set ENGATI_BASE_URL=http://127.0.0.1:{server.server_port}", err=True)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def _check_free(host: str, port: int) -> None:
    """RelayError (exit 1, one line) if the address cannot be listened on, before anything
    starts: gunicorn would otherwise retry for five seconds and end in a traceback-like log. The
    probe binds as gunicorn does (SO_REUSEADDR: a port in TIME_WAIT is free) and lets go."""
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            message = f"{where} is already in use (another relay?); pick another with --port"
        else:
            message = f"cannot listen on {where}: {exc.strerror or exc}"
        raise RelayError(message) from None


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt
