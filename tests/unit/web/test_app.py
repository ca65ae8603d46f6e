"""/readyz lists broken mapping files, and stays ready while the others serve."""

from __future__ import annotations

from tests.support.admin_app import make_admin


def test_readyz_lists_broken_mapping_files_and_stays_ready(tmp_path):
    admin = make_admin(tmp_path)
    ready = admin.client().get("/readyz")
    assert ready.status_code == 200
    assert ready.get_json() == {"status": "ready", "mappings": ["leads"], "broken": []}
    (tmp_path / "orders.yaml").write_text("phone: body.phone\nflows: nope\n")
    admin.registry.refresh(force=True)
    ready = admin.client().get("/readyz")
    assert ready.status_code == 200
    answer = ready.get_json()
    assert answer["status"] == "ready" and answer["mappings"] == ["leads"]
    assert [(b["name"], b["file"]) for b in answer["broken"]] == [("orders", "orders.yaml")]
    assert answer["broken"][0]["error"].startswith("orders.yaml")
    assert str(tmp_path) not in ready.get_data(as_text=True)  # no machine paths
