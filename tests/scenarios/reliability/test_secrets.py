"""Known secrets never appear in logs, error bodies, CLI output, the API or the database."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx
import pytest

from tests.support.cluster import Cluster
from tests.support.live import wait_for

pytestmark = pytest.mark.reliability

API_KEY = "sk-SECRET-API-KEY-7f3a91"
SIGNING = "tf-SECRET-SIGNING-9b2c44"
ADMIN = "adm-SECRET-TOKEN-5d1e08-9f3a7c2b6e4d1a08"
SIGNED = """
source: typeform
secret: ${TF_SECRET}
phone: body.phone
attributes:
  marker: body.id
flows: [{flow_key: SIGNED}]
"""


def test_secrets_stay_secret(database, tmp_path):
    """Set known secrets, exercise every surface, then search everything for them."""
    relay = Cluster(tmp_path, database, ENGATI_API_KEY=API_KEY, TF_SECRET=SIGNING,
                    RELAY_ADMIN_TOKEN=ADMIN)
    (tmp_path / "mappings" / "signed.yaml").write_text(SIGNED)
    relay.start(workers=1)
    outputs: list[str] = []

    def cli(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "relay", *args], env={**relay.env},
                              capture_output=True, text=True, timeout=60, input="{}")
        outputs.append(done.stdout + done.stderr)
        return done.stdout

    try:
        body = tmp_path / "lead.json"
        body.write_text(json.dumps({"id": "lead-1", "phone": "+919812345678"}))
        sent = cli("send", str(tmp_path / "mappings" / "signed.yaml"), str(body),
                   "--url", f"{relay.base}/hooks/signed")
        assert json.loads(sent)["status"] == "accepted"
        relay.steer("script", [{"status": 401}])  # Engati refuses the key
        relay.post(["lead-2"])
        forged = httpx.post(f"{relay.base}/hooks/signed", json={"phone": "+919812345678"},
                            headers={"Typeform-Signature": "sha256=Zm9yZ2Vk",
                                     "Authorization": f"Bearer {ADMIN}"})
        outputs.append(forged.text)
        wait_for(lambda: relay.query(
            "SELECT count(*) FROM deliveries WHERE status <> 'pending'")[0][0] == 2,
            what="both deliveries settled")
        api = httpx.get(f"{relay.base}/api/events", headers={"Authorization": f"Bearer {ADMIN}"})
        assert api.status_code == 200
        outputs.append(api.text)
        for event in api.json()["events"]:
            outputs.append(httpx.get(f"{relay.base}/api/events/{event['id']}",
                                     headers={"Authorization": f"Bearer {ADMIN}"}).text)
            cli("show", str(event["id"]))
            cli("show", "--json", str(event["id"]))
        cli("events")
        cli("check", str(tmp_path / "mappings"))
        cli("preview", str(tmp_path / "mappings" / "hooks.yaml"), "-")
        cli("replay", "--dead")
        calls = relay.calls()
        assert any(c["authorization"] == f"Basic {API_KEY}" for c in calls)  # it was used
        signature = next(line for line in relay.logs().splitlines() if "refused" in line)
        assert "does not match" in signature
    finally:
        codes = relay.stop()
    assert all(code == 0 for code in codes.values()), codes
    database_text = "\n".join(
        repr(row) for table in ("events", "deliveries", "attempts", "bots")
        for row in relay.query(f"SELECT * FROM {table}"))
    logs = "\n".join(p.read_text(errors="replace") for p in tmp_path.glob("*.log")
                     if not p.name.startswith("sandbox"))  # the sandbox plays Engati
    for secret in (API_KEY, SIGNING, ADMIN, "Zm9yZ2Vk"):
        for name, text in (("logs", logs), ("database", database_text),
                           ("outputs", "\n".join(outputs))):
            assert secret not in text, f"{secret} appears in the {name}"
