"""Every example mapping in mappings/ loads and passes its own tests."""

from __future__ import annotations

import pytest

from relay.mapping.load import load_file, load_folder
from relay.sources.selftest import run_test
from tests.conftest import MAPPINGS


def _cases():
    for file in sorted(MAPPINGS.glob("*.yaml")):
        mapping = load_file(file, env={})
        for case in mapping.tests:
            yield pytest.param(mapping, case, id=f"{file.stem}::{case['name']}")


@pytest.mark.parametrize(("mapping", "case"), list(_cases()))
def test_example(mapping, case):
    """The mapping gives what its test expects."""
    outcome = run_test(mapping, case)
    assert outcome.failures == []


def test_folder_loads_with_tests_for_every_mapping():
    """The examples folder loads as a whole, and no example mapping is without tests."""
    mappings = load_folder(MAPPINGS, env={})
    assert {"typeform-leads", "crm-leads"} <= set(mappings)
    assert all(m.tests for m in mappings.values())
