"""What a webhook costs the web process's own code, in one process: N signed Typeform webhooks
(each its own event id) through the relay's intake as the web process runs it (checked,
mapped, accepted into SQLite, answered and logged; `Intake.handle`, its steps driven in
line), without the HTTP server around it.

    .venv/bin/python benchmarks/intake_path.py [N]

Prints microseconds of CPU per webhook. Instruction counts do not depend on what else the
machine is doing: under callgrind, with N and with 1 (the warm-up alone), the difference over
N - 1 is the instructions per webhook:

    valgrind --tool=callgrind --callgrind-out-file=/dev/null .venv/bin/python \\
        benchmarks/intake_path.py 2000 2>&1 | grep refs

Run it from two checkouts to compare them (plain_path.py does the same for the mapping and
the store alone, with the worker's claim and record).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from werkzeug.test import EnvironBuilder

from relay.config import Settings
from relay.logs import configure_logging
from relay.sources.registry import Registry
from relay.store import open_store
from relay.web.app import create_app
from relay.web.intake import Intake, run

ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-secret"
NAME = "typeform-leads"


def requests(count: int) -> list[dict]:
    """WSGI environs of `count` signed webhooks, as the web server would hand them over."""
    example = json.loads((ROOT / "mappings" / "examples" / "typeform-standard.json").read_text())
    environs = []
    for i in range(count):
        example["event_id"] = example["form_response"]["token"] = f"bench{i:07d}"
        body = json.dumps(example).encode()
        signature = base64.b64encode(hmac.new(SECRET.encode(), body, hashlib.sha256).digest())
        environs.append(EnvironBuilder(path=f"/hooks/{NAME}", method="POST", data=body, headers={
            "Content-Type": "application/json", "User-Agent": "Typeform Webhooks",
            "Typeform-Signature": "sha256=" + signature.decode()}).get_environ())
    return environs


def main() -> None:
    n = max(1, int(sys.argv[1]) if len(sys.argv) > 1 else 2000)
    os.environ.update(TYPEFORM_SECRET=SECRET, ENGATI_CUSTOMER_ID="1", ENGATI_BOT_KEY="b",
                      ENGATI_API_KEY="k")
    environs = requests(n)
    # The access log is written, as in production, to nowhere.
    with open(os.devnull, "w") as log, tempfile.TemporaryDirectory() as name:
        sys.stderr = log
        configure_logging(Settings())
        folder = Path(name) / "mappings"
        folder.mkdir()
        (folder / f"{NAME}.yaml").write_bytes((ROOT / "mappings" / f"{NAME}.yaml").read_bytes())
        url = f"sqlite:///{name}/relay.db"
        store = open_store(url)
        store.upgrade()
        registry = Registry(folder)
        registry.load()
        intake = create_app(Settings(database_url=url, mappings=str(folder)), store=store,
                            registry=registry).wsgi_app
        assert isinstance(intake, Intake)
        status = run(intake.handle(environs[0], NAME))[0]  # the warm-up: imports, plans
        assert status.startswith("202"), status
        started = time.process_time()
        for environ in environs[1:]:
            status = run(intake.handle(environ, NAME))[0]
        took = time.process_time() - started
        store.dispose()
    if n > 1:
        print(f"{n - 1} webhooks: {took / (n - 1) * 1e6:.0f} us of CPU each (last: {status})",
              file=sys.__stdout__)


if __name__ == "__main__":
    main()
