"""Hot reload: changes apply without a restart; a broken file never replaces a good one."""

from __future__ import annotations

import logging
import os

import pytest

from relay.errors import MappingLoadError
from relay.sources.registry import Registry

GOOD = "phone: body.phone\nflows: [{flow_key: %s}]\n"


def touch(path, text):
    path.write_text(text)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))  # a distinct mtime


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "leads.yaml").write_text(GOOD % "V1")
    return tmp_path


def test_start_up_refuses_broken_files(folder):
    """At start-up a broken file is fatal, naming the problem."""
    (folder / "bad.yaml").write_text("phone: [\n")
    with pytest.raises(MappingLoadError, match=r"bad\.yaml"):
        Registry(folder).load()


def test_changed_added_and_removed_files(folder):
    """A change, a new file and a deletion are all picked up."""
    registry = Registry(folder, check_every=0)
    registry.load()
    touch(folder / "leads.yaml", GOOD % "V2")
    touch(folder / "orders.yaml", GOOD % "O1")
    assert registry.get("leads").mapping.flows[0].flow_key == "V2"
    assert registry.get("orders").mapping.flows[0].flow_key == "O1"
    (folder / "orders.yaml").unlink()
    assert registry.get("orders") is None


def test_broken_change_keeps_the_last_good_version(folder, caplog):
    """A broken edit is logged and the previous version keeps serving."""
    registry = Registry(folder, check_every=0)
    registry.load()
    caplog.set_level(logging.ERROR, "relay.mappings")
    touch(folder / "leads.yaml", "phone: body.phone\nflows: [{flow_key: X, wen: y}]\n")
    assert registry.get("leads").mapping.flows[0].flow_key == "V1"
    assert "keeping the last good version" in caplog.text
    assert "flows[0].wen: unknown key" in caplog.text
    touch(folder / "leads.yaml", GOOD % "V3")
    assert registry.get("leads").mapping.flows[0].flow_key == "V3"


def test_an_edit_yaml_cannot_build_is_a_broken_file(folder):
    """A date that does not exist in a changed file: broken, said with its line, the last
    good version serving (it used to escape the registry and fail every request)."""
    registry = Registry(folder, check_every=0)
    registry.load()
    touch(folder / "leads.yaml", "description: 2026-02-30\n" + GOOD % "V2")
    assert registry.get("leads").mapping.flows[0].flow_key == "V1"
    assert registry.broken_error("leads").startswith("leads.yaml:1: invalid YAML")


def test_a_loader_bug_breaks_one_file_not_the_registry(folder, monkeypatch):
    """Whatever a file makes the loader raise, it is that file's problem."""
    registry = Registry(folder, check_every=0)
    registry.load()

    def explode(file):
        raise RuntimeError("a bug")

    monkeypatch.setattr("relay.sources.registry.load_endpoint", explode)
    touch(folder / "orders.yaml", GOOD % "O1")
    assert registry.get("orders") is None and registry.get("leads") is not None
    assert "RuntimeError('a bug')" in registry.broken_error("orders")


def test_checks_are_throttled(folder):
    """The folder is scanned at most once per interval, not on every request."""
    registry = Registry(folder, check_every=3600)
    registry.load()
    touch(folder / "leads.yaml", GOOD % "V2")
    assert registry.get("leads").mapping.flows[0].flow_key == "V1"
    registry.refresh(force=True)
    assert registry.get("leads").mapping.flows[0].flow_key == "V2"


def test_a_second_file_for_a_served_name_is_ignored(folder, caplog):
    """leads.yml added beside leads.yaml: the first keeps serving, the log says why."""
    registry = Registry(folder, check_every=0)
    registry.load()
    caplog.set_level(logging.ERROR, "relay.mappings")
    touch(folder / "leads.yml", GOOD % "V2")
    assert registry.get("leads").mapping.flows[0].flow_key == "V1"
    assert any(r.getMessage().endswith(f"is ignored: endpoint /hooks/leads is also "
                                       f"{folder / 'leads.yaml'}") for r in caplog.records)


def test_endpoints_come_by_name(folder):
    """`endpoints()` lists what `names()` names, in the same order (relay serve's start-up
    warnings read it)."""
    touch(folder / "alpha.yaml", GOOD % "A1")
    registry = Registry(folder, check_every=0)
    registry.load()
    assert [e.name for e in registry.endpoints()] == registry.names() == ["alpha", "leads"]
    assert registry.endpoints()[0].mapping.flows[0].flow_key == "A1"
