"""The mappings folder: one scan, and one rule for two files claiming one endpoint."""

from __future__ import annotations

import pytest

from relay.errors import MappingLoadError
from relay.sources import load_folder, mapping_files
from relay.sources.folder import find_file, unique

GOOD = "phone: a\nflows: [{flow_key: X}]\n"


def test_mapping_files_are_yaml_files_in_order(tmp_path):
    """*.yaml and *.yml, sorted; other files and folders are not mappings."""
    for name in ("b.yml", "a.yaml", "notes.txt"):
        (tmp_path / name).write_text(GOOD)
    (tmp_path / "examples.yaml").mkdir()
    assert [p.name for p in mapping_files(tmp_path)] == ["a.yaml", "b.yml"]
    assert find_file(tmp_path, "b") == tmp_path / "b.yml"
    assert find_file(tmp_path, "notes") is None


def test_the_first_file_of_a_name_wins(tmp_path, endpoint):
    """A later file claiming a served name is a problem naming both files."""
    first, second = endpoint(GOOD), endpoint(GOOD)
    by_name, duplicates = unique([first, second])
    assert by_name == {"leads": first}
    assert [(p.file, p.message) for p in duplicates] == [
        (second.file, f"endpoint /hooks/leads is also {first.file}")]


class TestLoadFolder:
    def test_duplicate_endpoint_names_are_refused(self, tmp_path):
        """leads.yaml and leads.yml would both serve /hooks/leads."""
        for suffix in (".yaml", ".yml"):
            (tmp_path / f"leads{suffix}").write_text("phone: a\nflows: [{flow_key: X}]\n")
        with pytest.raises(MappingLoadError, match=r"endpoint /hooks/leads is also"):
            load_folder(tmp_path, env={})

    def test_problems_of_all_files_are_reported(self, tmp_path):
        """A folder with two broken files reports both."""
        (tmp_path / "a.yaml").write_text("phone: a\n")
        (tmp_path / "b.yaml").write_text("flows: [{flow_key: X}]\n")
        (tmp_path / "notes.txt").write_text("not a mapping")
        with pytest.raises(MappingLoadError) as info:
            load_folder(tmp_path, env={})
        assert [p.file.rsplit("/", 1)[1] for p in info.value.problems] == ["a.yaml", "b.yaml"]

    def test_missing_folder(self, tmp_path):
        """A folder that does not exist is a clear error."""
        with pytest.raises(MappingLoadError, match="no such folder"):
            load_folder(tmp_path / "nope")
