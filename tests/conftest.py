"""Shared fixtures: mapping files written on the fly, and the example mappings folder."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from relay.loader import load_file

ROOT = Path(__file__).resolve().parent.parent
MAPPINGS = ROOT / "mappings"

MINIMAL = """
phone: body.phone
flows:
  - flow_key: ABC
"""


@pytest.fixture
def write_mapping(tmp_path):
    """Write a mapping file (dedented) and return its path."""

    def write(text: str = MINIMAL, name: str = "leads") -> Path:
        path = tmp_path / f"{name}.yaml"
        path.write_text(textwrap.dedent(text))
        return path

    return write


@pytest.fixture
def mapping(write_mapping):
    """Load a mapping from YAML text, with no environment variables set."""

    def load(text: str = MINIMAL, env: dict[str, str] | None = None):
        return load_file(write_mapping(text), env=env or {})

    return load
