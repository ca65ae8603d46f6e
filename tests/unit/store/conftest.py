"""`any_store`: every keeper of the contract, the in-memory fake included, for the tests
marked `everywhere` (helpers.py); `store` (from tests/conftest.py) is the real backends only
(SQLite, and PostgreSQL when a server answers)."""

from __future__ import annotations

import pytest

from tests.support.fake_store import FakeStore


@pytest.fixture
def any_store(request, database_url):
    if request.param == "fake":
        return FakeStore()
    store = request.getfixturevalue("store")
    store.index_each = request.param == "indexed"  # test_search.py indexes after each event
    return store
