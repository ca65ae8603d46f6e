"""The console's rows on both backends: one session key per deployment, sessions that end."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from relay.store import Store
from relay.store.sessions import ConsoleStore


def test_every_process_gets_the_same_session_key(store):
    """Whoever asks first makes the key; everyone after, in any process, reads that one."""
    others = [Store(store.url) for _ in range(4)]
    try:
        with ThreadPoolExecutor(4) as pool:
            keys = set(pool.map(lambda s: ConsoleStore(s).session_key(), others))
        assert len(keys) == 1
        assert ConsoleStore(store).session_key() in keys
        assert len(keys.pop()) >= 32
    finally:
        for other in others:
            other.dispose()


def test_sessions_open_expire_and_end(store):
    sessions = ConsoleStore(store)
    sessions.open_session("a", 1000.0, 60)
    sessions.open_session("b", 1000.0, 600)
    assert sessions.session_alive("a", 1059.0) and not sessions.session_alive("a", 1060.0)
    assert not sessions.session_alive("nobody", 1000.0)
    sessions.end_session("b")
    assert not sessions.session_alive("b", 1001.0)
