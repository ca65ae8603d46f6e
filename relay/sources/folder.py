"""The mappings folder: which files are mappings, and which endpoint each one serves.

The one place that scans a folder for mapping files and the one place that decides which of
two files claiming the same endpoint name wins: the registry, `relay check` and `relay
replay` all go through here.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from collections.abc import Mapping as AnyMapping
from pathlib import Path

from relay.errors import MappingLoadError, Problem
from relay.sources.endpoint import Endpoint, load_endpoint

SUFFIXES = (".yaml", ".yml")


def mapping_files(folder: str | Path) -> list[Path]:
    """The mapping files of `folder`, sorted (OSError when it cannot be listed)."""
    return sorted(p for p in Path(folder).iterdir() if p.suffix in SUFFIXES and p.is_file())


def find_file(folder: str | Path, name: str) -> Path | None:
    """The file in `folder` that serves /hooks/<name>, if there is one."""
    return next((Path(folder) / f"{name}{suffix}" for suffix in SUFFIXES
                 if (Path(folder) / f"{name}{suffix}").is_file()), None)


def unique(endpoints: Iterable[Endpoint]) -> tuple[dict[str, Endpoint], list[Problem]]:
    """The endpoints by name, the first of each name winning, and a problem for every later
    file that claims a name already served."""
    by_name: dict[str, Endpoint] = {}
    problems: list[Problem] = []
    for endpoint in endpoints:
        first = by_name.setdefault(endpoint.name, endpoint)
        if first is not endpoint:
            problems.append(Problem(endpoint.file, None, "",
                                    f"endpoint /hooks/{endpoint.name} is also {first.file}"))
    return by_name, problems


def load_folder(folder: str | Path,
                env: AnyMapping[str, str] | None = None) -> dict[str, Endpoint]:
    """Load every mapping in `folder`; all problems of all files are raised together."""
    try:
        files = mapping_files(folder)
    except OSError:
        raise MappingLoadError([Problem(str(folder), None, "", "no such folder")]) from None
    endpoints: list[Endpoint] = []
    problems: list[Problem] = []
    for file in files:
        try:
            endpoints.append(load_endpoint(file, env))
        except MappingLoadError as exc:
            problems.extend(exc.problems)
    by_name, duplicates = unique(endpoints)
    if problems or duplicates:
        place = {str(file): index for index, file in enumerate(files)}  # in the files' order
        raise MappingLoadError(sorted(problems + duplicates, key=lambda p: place[p.file]))
    return by_name


def write_atomically(file: Path, data: bytes) -> None:
    """Write `data` as `file` so that a reader (the registry) sees the old file or the new
    one, never half of it: a temporary file beside it, synced, then renamed over it. The
    temporary name has no .yaml suffix, so the registry never loads it."""
    handle, temporary = tempfile.mkstemp(dir=file.parent, prefix=f".{file.name}.",
                                         suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, 0o644)  # mkstemp's 0600 would hide it from a reader in a group
        os.replace(temporary, file)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
