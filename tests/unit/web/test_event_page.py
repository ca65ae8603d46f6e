"""An event's page: phone, flow, the rule that matched (recorded when the webhook was
accepted), Engati's answer, times as <time> in UTC for the browser to convert, and XML bodies
also as the expressions see them."""

from __future__ import annotations

import re

from tests.support.admin_app import make_admin

RULES = """
phone: {path: body.phone, region: IN}
attributes:
  city: body.city
flows:
  - when: attributes.city == 'Pune'
    flow_key: PUNE
  - flow_key: ELSEWHERE
"""
XML = """
phone: body.lead.phone
flows: [{flow_key: XMLFLOW}]
"""


def test_the_rule_engatis_answer_and_times(tmp_path):
    admin = make_admin(tmp_path, RULES)
    event_id = admin.client().post("/hooks/leads", json={
        "phone": "+919812345678", "city": "Delhi"}).get_json()["event_id"]
    admin.attempt("dead", 400, "Engati answered HTTP 400 with status 1002 invalid flow")
    page = admin.logged_in().get(f"/admin/events/{event_id}").get_data(as_text=True)
    assert ("rule 2: the fallback (no `when`); rule 1 `attributes.city == &#39;Pune&#39;` was "
            "false") in page
    assert '<td class="flow">ELSEWHERE</td>' in page
    assert '<td class="phone">919812345678</td>' in page
    assert "Engati answered HTTP 400 with status 1002 invalid flow" in page
    assert re.search(r'<time id="received" datetime="\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ">'
                     r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC</time>", page)
    assert "time.js" in page
    assert f'href="/admin/playground?event={event_id}"' in page


def test_a_delivered_answer(tmp_path):
    admin = make_admin(tmp_path, RULES)
    event_id = admin.client().post("/hooks/leads", json={
        "phone": "+919812345678", "city": "Pune"}).get_json()["event_id"]
    admin.attempt("delivered", 200)
    page = admin.logged_in().get(f"/admin/events/{event_id}").get_data(as_text=True)
    assert '<td class="answer">HTTP 200, accepted</td>' in page
    assert "rule 1: when" in page


def test_an_xml_body_is_shown_as_the_expressions_see_it(tmp_path):
    admin = make_admin(tmp_path, XML)
    event_id = admin.client().post(
        "/hooks/leads", data="<lead><phone>+919812345678</phone></lead>",
        headers={"Content-Type": "text/xml"}).get_json()["event_id"]
    page = admin.logged_in().get(f"/admin/events/{event_id}").get_data(as_text=True)
    parsed = re.search(r'<pre id="parsed">(.*?)</pre>', page, re.S)
    assert parsed and "&#34;phone&#34;: &#34;+919812345678&#34;" in parsed.group(1)


def test_a_json_body_is_not_shown_twice(tmp_path):
    admin = make_admin(tmp_path, RULES)
    event_id = admin.client().post("/hooks/leads", json={
        "phone": "+919812345678"}).get_json()["event_id"]
    page = admin.logged_in().get(f"/admin/events/{event_id}").get_data(as_text=True)
    assert 'id="parsed"' not in page
