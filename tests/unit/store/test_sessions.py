"""The console's rows on both backends: one session key per deployment, sessions that end."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from relay.store import open_store


def test_every_process_gets_the_same_session_key(store):
    """Whoever asks first makes the key; everyone after, in any process, reads that one."""
    others = [open_store(store.url) for _ in range(4)]
    try:
        with ThreadPoolExecutor(4) as pool:
            keys = set(pool.map(lambda s: s.session_key(), others))
        assert len(keys) == 1
        assert store.session_key() in keys
        assert len(keys.pop()) >= 32
    finally:
        for other in others:
            other.dispose()


def test_sessions_open_expire_and_end(store):
    """A session lives until it expires or is ended."""
    store.open_session("a", 1000.0, 60)
    store.open_session("b", 1000.0, 600)
    assert store.session_alive("a", 1059.0) and not store.session_alive("a", 1060.0)
    assert not store.session_alive("nobody", 1000.0)
    store.end_session("b")
    assert not store.session_alive("b", 1001.0)
