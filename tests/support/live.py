"""Helpers for tests with real processes: free ports, polling with a deadline, clean stops."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

_GIVEN: set[int] = set()


def free_port() -> int:
    """A free port on 127.0.0.1, never one this test run handed out before (the kernel may
    offer a port again once its probe socket is closed)."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port not in _GIVEN:
            _GIVEN.add(port)
            return port


def wait_for(predicate: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    """Poll `predicate` until it returns something truthy, or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


class Process:
    """A child process in its own session, its output in a log file."""

    def __init__(self, argv: list[str], env: dict[str, str], log: Path):
        self.log = log
        self._file = log.open("wb")
        self.process = subprocess.Popen(
            argv, env={**os.environ, **env}, stdout=self._file, stderr=subprocess.STDOUT,
            start_new_session=True)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM, then SIGKILL for the whole group if it does not end in time."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            code = self.process.wait()
        self._file.close()
        return code


def answers(url: str) -> bool:
    """Whether `url` answers 200 (a 404 may be another server on the port)."""
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


class Relay(Process):
    """`relay <args>` as a child process."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path):
        super().__init__([sys.executable, "-m", "relay", *args], env, log)
