"""A mapping's `tests:`: each case maps an example body and compares with what it expects."""

from __future__ import annotations

from relay.sources.selftest import run_tests

MAPPING = """
phone: body.phone
filter: body.type == 'lead'
attributes:
  name: body.name
flows: [{flow_key: F1}]
tests:
  - name: a lead
    body: {type: lead, phone: "+919812345678", name: Asha}
    expect: {flow_key: F1, phone: "919812345678", attributes: {name: Asha}}
  - name: a ping is skipped
    body: {type: ping}
    expect: {skipped: true}
  - name: a lead without a phone fails
    body: {type: lead}
    expect: {errors: [phone]}
  - name: from a file
    body: examples/lead.json
    expect: {flow_key: F1}
"""


def test_passing_cases_have_no_failures(endpoint, tmp_path):
    """Deliveries, skips and expected errors all pass when they match; a body may be a
    file next to the mapping."""
    (tmp_path / "examples").mkdir()
    (tmp_path / "examples" / "lead.json").write_text('{"type": "lead", "phone": "9812345678"}')
    loaded = endpoint(MAPPING.replace("phone: body.phone\n", "phone: {path: body.phone, "
                                      "region: IN}\n", 1))
    assert {o.name: o.failures for o in run_tests(loaded)} == {
        "a lead": [], "a ping is skipped": [], "a lead without a phone fails": [],
        "from a file": []}


def test_differences_are_spelled_out(endpoint):
    """A wrong expectation names the field, what was expected and what came."""
    loaded = endpoint(MAPPING.replace("name: Asha}}", "name: Ravi}}").replace(
        "{skipped: true}", "{flow_key: F1}"))
    failures = {o.name: o.failures for o in run_tests(loaded)}
    assert failures["a lead"] == ["attributes.name: expected 'Ravi', got 'Asha'"]
    assert failures["a ping is skipped"] == [
        "expected a delivery, but the webhook was skipped (filter)"]
    assert failures["from a file"] == [f"body: no file examples/lead.json next to {loaded.file}"]
