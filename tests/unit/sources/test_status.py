"""A mapping's state (relay/sources/status.py), and that the console's Mappings page,
/readyz and `relay check` give the same one for every file."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from relay.cli import main
from relay.errors import MappingLoadError
from relay.sources import load_endpoint
from relay.sources.registry import Registry
from relay.sources.status import BROKEN, LOCKED, OK, UNCONFIGURED, state_of, summary
from tests.support.admin_app import make_admin

ENGATI = "engati: {customer_id: '1', bot_key: b, api_key: k}\n"
BASE = "phone: body.phone\nflows: [{flow_key: F}]\n"
FILES = {
    "ok": "source: generic\nverify: false\n" + ENGATI + BASE,
    "locked": "source: typeform\nsecret: ${STATUS_TEST_SECRET}\n" + ENGATI + BASE,
    "unconfigured": "source: generic\nverify: false\n" + BASE,
}
BROKEN_FILE = "phone: body.phone\nflows:\n  - wen: body.x\n    flow_key: F\n"


@pytest.fixture
def folder(tmp_path, monkeypatch):
    for name in ("ENGATI_CUSTOMER_ID", "ENGATI_BOT_KEY", "ENGATI_API_KEY", "STATUS_TEST_SECRET"):
        monkeypatch.delenv(name, raising=False)
    folder = tmp_path / "mappings"
    folder.mkdir()
    for name, text in FILES.items():
        (folder / f"{name}.yaml").write_text(text)
    return folder


def load(path: Path):
    try:
        return load_endpoint(path)
    except MappingLoadError as exc:
        return exc


class TestStateOf:
    def test_each_state_says_why(self, folder):
        """ok says nothing more; locked names the unset variable and that the endpoint
        answers 503; unconfigured names the ENGATI_* variables."""
        (folder / "broken.yaml").write_text(BROKEN_FILE)
        states = {p.stem: state_of(p, load(p)) for p in sorted(folder.glob("*.yaml"))}
        assert {n: s.state for n, s in states.items()} == {
            "ok": OK, "locked": LOCKED, "unconfigured": UNCONFIGURED, "broken": BROKEN}
        assert (states["ok"].detail, states["ok"].serving) == ("", True)
        assert states["locked"].missing == ("STATUS_TEST_SECRET",)
        assert "STATUS_TEST_SECRET is not set" in states["locked"].detail
        assert "answers 503" in states["locked"].detail and not states["locked"].serving
        assert states["unconfigured"].missing == (
            "ENGATI_CUSTOMER_ID", "ENGATI_BOT_KEY", "ENGATI_API_KEY")
        assert states["unconfigured"].serving

    def test_broken_gives_the_first_problem_with_its_line_and_no_machine_path(self, folder):
        path = folder / "broken.yaml"
        path.write_text(BROKEN_FILE)
        state = state_of(path, load(path))
        assert (state.state, state.line, state.serving) == (BROKEN, 3, False)
        assert state.detail.startswith("broken.yaml:3: flows[0].wen: unknown key")
        assert str(folder) not in state.detail

    def test_a_locked_mapping_also_says_its_engati_settings_are_missing(self, folder):
        path = folder / "both.yaml"
        path.write_text("source: typeform\nsecret: ${STATUS_TEST_SECRET}\n" + BASE)
        state = state_of(path, load(path))
        assert state.state == LOCKED
        assert "Engati settings missing too: ENGATI_CUSTOMER_ID" in state.detail

    def test_a_mapping_that_only_cancels_needs_no_engati_settings(self, folder):
        """No phone, no flows: it never calls Engati, so unset ENGATI_* leave it ok."""
        path = folder / "paid.yaml"
        path.write_text("source: generic\nverify: false\ncancel: {key: body.token}\n")
        state = state_of(path, load(path))
        assert (state.state, state.missing, state.detail) == (OK, (), "")

    def test_a_broken_reload_keeps_serving_the_last_good_version(self, folder):
        registry = Registry(folder)
        registry.load()
        (folder / "ok.yaml").write_text(BROKEN_FILE)
        registry.refresh(force=True)
        (state,) = [s for s in _states(registry) if s.name == "ok"]
        assert (state.state, state.serving) == (BROKEN, True)
        assert "the last good version still serves" in state.detail


def _states(registry):
    from relay.sources.status import folder_states
    return folder_states(registry.files())


class TestSummary:
    def test_waiting_mappings_are_one_line_not_a_warning_each(self, folder):
        """What start-up says: how many loaded and serve, then one info line for every
        mapping waiting on a secret, with the variables to set; a warning only for what is
        wrong with a mapping that serves (its Engati settings)."""
        (folder / "locked2.yaml").write_text(FILES["locked"].replace("STATUS_TEST_SECRET",
                                                                    "OTHER_SECRET"))
        registry = Registry(folder)
        registry.load(announce=False)
        lines = summary(_states(registry), "mappings")
        assert lines[0] == (False, "loaded 4 mapping(s) from mappings: 2 serving "
                                   "(ok, unconfigured)")
        assert lines[1] == (False, "waiting on a secret: locked, locked2 (set "
                                   "STATUS_TEST_SECRET, OTHER_SECRET); they answer 503 until then")
        assert lines[2][0] is True and lines[2][1].startswith(
            "Engati settings missing for unconfigured: set ENGATI_CUSTOMER_ID")
        assert len(lines) == 3

    def test_load_says_it_at_info_and_quietly_when_told(self, folder, caplog):
        caplog.set_level(logging.DEBUG, "relay.mappings")
        Registry(folder).load()
        loud = [(r.levelno, r.getMessage()) for r in caplog.records]
        assert [level for level, _ in loud] == [logging.INFO, logging.INFO, logging.WARNING]
        caplog.clear()
        Registry(folder).load(announce=False)
        assert {r.levelno for r in caplog.records} == {logging.DEBUG}


class TestTheyAgree:
    def test_page_readyz_and_check_give_every_file_the_same_state(self, folder, monkeypatch):
        """One file of each state: the Mappings page, /readyz and `relay check` agree."""
        admin = make_admin(folder, mapping=FILES["ok"])  # leads.yaml: another ok one
        (folder / "broken.yaml").write_text(BROKEN_FILE)
        admin.registry.refresh(force=True)
        expected = {"leads": OK, "ok": OK, "locked": LOCKED, "unconfigured": UNCONFIGURED,
                    "broken": BROKEN}

        ready = admin.client().get("/readyz").get_json()
        assert {s["name"]: s["state"] for s in ready["states"]} == expected
        assert [b["name"] for b in ready["broken"]] == ["broken"]

        page = admin.logged_in().get("/admin/mappings").get_data(as_text=True)
        assert dict(re.findall(r'data-mapping="([^"]+)" data-state="(\w+)"', page)) == expected

        result = CliRunner().invoke(main, ["check", str(folder)])
        assert result.exit_code == 1  # broken.yaml fails the check
        checked = dict(re.findall(r"^\S*/([\w-]+)\.yaml\n  state (\w+)", result.output, re.M))
        assert checked == expected, result.output


class TestChildren:
    def test_a_quiet_load_reports_a_broken_file_instead_of_raising(self, folder, caplog):
        """What a web process of `relay serve` does when gunicorn (re)starts it after a file
        broke: the good files serve, the broken one is listed as on a reload, and nothing of
        the summary is logged above debug level."""
        (folder / "broken.yaml").write_text(BROKEN_FILE)
        with pytest.raises(MappingLoadError):
            Registry(folder).load()
        caplog.set_level(logging.DEBUG, "relay.mappings")
        caplog.clear()
        registry = Registry(folder)
        registry.load(announce=False, strict=False)
        assert registry.names() == ["locked", "ok", "unconfigured"]
        assert [b["name"] for b in registry.broken()] == ["broken"]
        assert {r.levelno for r in caplog.records} == {logging.DEBUG, logging.ERROR}
        assert [s.state for s in _states(registry)] == [BROKEN, LOCKED, OK, UNCONFIGURED]
