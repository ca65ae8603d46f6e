"""The loaded endpoints, reloaded when their mapping files change (no restart needed).

At start-up a broken or duplicate file is fatal; afterwards a broken change keeps the last
good version of that file and the log says why.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from relay.errors import MappingLoadError, Problem
from relay.sources.endpoint import Endpoint, load_endpoint
from relay.sources.folder import load_folder, mapping_files, unique
from relay.sources.status import Loaded, first_problem, folder_states, summary

log = logging.getLogger("relay.mappings")

Stamp = tuple[int, int]  # (mtime_ns, size): a change to either means the file changed


class Registry:
    def __init__(self, folder: str | Path, *, check_every: float = 1.0):
        self.folder = Path(folder)
        self.check_every = check_every
        self._lock = threading.Lock()
        self._checked = 0.0
        self._stamps: dict[Path, Stamp] = {}
        self._by_file: dict[Path, Endpoint] = {}
        self._by_name: dict[str, Endpoint] = {}
        self._broken: dict[Path, MappingLoadError] = {}  # files that failed their last load
        self._quiet = False  # a quiet load: each file loaded is logged at debug level

    def load(self, *, announce: bool = True, strict: bool = True) -> None:
        """Load every file; raise MappingLoadError listing all problems. `announce` logs what
        was loaded and what waits on a secret (status.summary); a process that leaves that to
        another (`relay serve`'s children: the parent says it once) logs it at debug level.

        Not `strict`, a broken file is reported as on a reload, not raised: for `relay
        serve`'s children, whose parent refused to start on a broken file already; a web
        process that gunicorn restarts after a file broke must not fail to boot (gunicorn
        would then stop the whole relay)."""
        if not strict:
            self._quiet = not announce
            try:
                self.refresh(force=True)
            finally:
                self._quiet = False
            self._announce(announce)
            return
        endpoints = load_folder(self.folder)
        with self._lock:
            self._by_file = {Path(m.file): m for m in endpoints.values()}
            self._stamps = {f: stamp for f, stamp in self._scan().items() if f in self._by_file}
            self._by_name = dict(endpoints)
            self._broken = {}
            self._checked = time.monotonic()
        self._announce(announce)

    def _announce(self, announce: bool) -> None:
        for warning, line in summary(folder_states(self.files()), self.folder):
            log.log(logging.DEBUG if not announce else logging.WARNING if warning
                    else logging.INFO, "%s", line)

    def files(self) -> list[tuple[Path, Loaded, Endpoint | None]]:
        """Every mapping file with what it loaded to (status.Loaded) and, for a broken one,
        the last good version that still serves: what status.folder_states reads."""
        self.refresh()
        with self._lock:
            listed: list[tuple[Path, Loaded, Endpoint | None]] = []
            for file, endpoint in self._by_file.items():
                first = self._by_name.get(endpoint.name)
                if file in self._broken:
                    continue
                if first is endpoint:
                    listed.append((file, endpoint, None))
                else:  # a second file for a served name: ignored, as refresh() logged
                    served = Path(first.file).name if first else "?"
                    listed.append((file, Problem(str(file), None, "", f"endpoint "
                                   f"/hooks/{endpoint.name} is also {served}; rename one"), None))
            for file, exc in self._broken.items():
                listed.append((file, exc, self._by_file.get(file)))
            return listed

    def get(self, name: str) -> Endpoint | None:
        self.refresh()
        return self._by_name.get(name)

    def endpoints(self) -> list[Endpoint]:
        """Every loaded endpoint, by name."""
        self.refresh()
        return [self._by_name[name] for name in sorted(self._by_name)]

    def regions(self, mapping: str | None = None) -> list[str | None]:
        """The regions a typed phone is read in (search.phone_terms): `mapping`'s, else
        every loaded mapping's."""
        names = [mapping] if mapping else self.names()
        return [e.mapping.phone.region for e in map(self.get, names)
                if e is not None and e.mapping.phone is not None]

    def names(self) -> list[str]:
        self.refresh()
        return sorted(self._by_name)

    def broken(self) -> list[dict[str, str]]:
        """Files whose last change failed to load: {name, file, error}, by name. The file is
        named as it is inside the mappings folder, never with the machine's path; `error` is
        the first problem (`file:line: key: message`). A broken file whose last good version
        still serves is listed too."""
        self.refresh()
        return [{"name": file.stem, "file": file.name,
                 "error": first_problem(exc.problems[0] if exc.problems else None, file)}
                for file, exc in sorted(self._broken.items(), key=lambda f: f[0].stem)]

    def broken_error(self, name: str) -> str | None:
        """The load error of the broken file that would serve /hooks/<name>, if any."""
        return next((b["error"] for b in self.broken() if b["name"] == name), None)

    def refresh(self, force: bool = False) -> None:
        """Pick up added, changed and removed files, at most once per `check_every`."""
        if not force and time.monotonic() - self._checked < self.check_every:
            return
        with self._lock:
            self._checked = time.monotonic()
            current = self._scan()
            changed = [f for f, stamp in current.items() if self._stamps.get(f) != stamp]
            removed = [f for f in self._by_file if f not in current]
            for file in [f for f in self._broken if f not in current]:
                del self._broken[file]  # a broken file deleted: nothing to report any more
            if not changed and not removed:
                return
            by_file = dict(self._by_file)
            for file in removed:
                log.info("mapping %s removed (%s)", by_file.pop(file).name, file)
                self._stamps.pop(file, None)
            for file in changed:
                self._stamps[file] = current[file]
                try:
                    by_file[file] = load_endpoint(file)
                except Exception as exc:  # one bad file must not stop the others loading
                    if not isinstance(exc, MappingLoadError):
                        log.exception("mapping %s: the loader failed (a bug)", file)
                        exc = MappingLoadError([Problem(str(file), None, "", "the file "
                                                        f"cannot be loaded: {exc!r}")])
                    self._broken[file] = exc
                    kept = "keeping the last good version" if file in by_file else "not loaded"
                    log.error("mapping %s is broken, %s: %s", file, kept,
                              "; ".join(str(p) for p in exc.problems))
                    continue
                self._broken.pop(file, None)
                if self._quiet:
                    log.debug("mapping %s loaded from %s", by_file[file].name, file)
                    continue
                log.info("mapping %s loaded from %s", by_file[file].name, file)
                _warn_if_locked(by_file[file])
            self._by_file = by_file
            self._by_name, duplicates = unique(by_file[file] for file in sorted(by_file))
            for problem in duplicates:
                log.error("%s is ignored: %s", problem.file, problem.message)

    def _scan(self) -> dict[Path, Stamp]:
        stamps: dict[Path, Stamp] = {}
        try:
            for path in mapping_files(self.folder):
                st = path.stat()
                stamps[path] = (st.st_mtime_ns, st.st_size)
        except OSError as exc:
            log.error("cannot read the mappings folder %s: %s", self.folder, exc)
        return stamps


def _warn_if_locked(endpoint: Endpoint) -> None:
    if endpoint.locked:
        log.warning("mapping %s: %s; /hooks/%s answers 503 until it is", endpoint.name,
                    endpoint.locked, endpoint.name)
