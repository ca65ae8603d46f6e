"""Which flow rule chose a delivery, and why: evaluate() records it on every delivery (pure),
and a webhook no rule matches says which rules were false."""

from __future__ import annotations

from relay.mapping import Rule, evaluate
from relay.mapping.load import load

MAPPING = """
phone: body.phone
attributes:
  city: body.city
flows:
  - when: attributes.city == 'Pune'
    flow_key: PUNE
  - when: attributes.city == 'Mumbai'
    flow_key: MUMBAI
  - flow_key: ELSEWHERE
"""


def _mapped(text: str, body: dict) -> object:
    return evaluate(load(text, "m.yaml", {}), {"body": body, "headers": {}, "query": {}})


class TestRuleExplanation:
    def test_the_matching_rule_and_the_false_ones_before_it(self):
        """The second rule matched: its `when` was true, the first one's false."""
        (delivery,) = _mapped(MAPPING, {"phone": "+919812345678", "city": "Mumbai"}).deliveries
        assert delivery.flow_key == "MUMBAI"
        assert delivery.rule == Rule(2, "attributes.city == 'Mumbai'",
                                     ("attributes.city == 'Pune'",))
        assert delivery.rule.explain() == ("rule 2: when `attributes.city == 'Mumbai'` was "
                                           "true; rule 1 `attributes.city == 'Pune'` was false")

    def test_the_fallback(self):
        """No `when` matched: the fallback, named as such, after every rule that was false."""
        (delivery,) = _mapped(MAPPING, {"phone": "+919812345678", "city": "Delhi"}).deliveries
        assert delivery.rule.explain() == (
            "rule 3: the fallback (no `when`); rule 1 `attributes.city == 'Pune'` was false; "
            "rule 2 `attributes.city == 'Mumbai'` was false")

    def test_the_first_rule(self):
        (delivery,) = _mapped(MAPPING, {"phone": "+919812345678", "city": "Pune"}).deliveries
        assert delivery.rule.explain() == "rule 1: when `attributes.city == 'Pune'` was true"

    def test_no_rule_matched_says_which_were_false(self):
        """Without a fallback, the error lists the rules that were false."""
        text = MAPPING.replace("  - flow_key: ELSEWHERE\n", "")
        result = _mapped(text, {"phone": "+919812345678", "city": "Delhi"})
        (error,) = result.errors
        assert error.field == "flows"
        assert "rule 1 `attributes.city == 'Pune'` was false" in error.message
        assert "rule 2 `attributes.city == 'Mumbai'` was false" in error.message

    def test_the_rule_is_not_part_of_what_a_delivery_is(self):
        """Deliveries to the same flow are equal whichever rule chose them."""
        a = _mapped(MAPPING, {"phone": "+919812345678", "city": "Delhi"}).deliveries[0]
        b = _mapped(MAPPING.replace("ELSEWHERE", "PUNE"),
                    {"phone": "+919812345678", "city": "Pune"}).deliveries[0]
        assert a.rule != b.rule
        assert a.flow_key != b.flow_key

    def test_a_stored_rule_is_capped(self):
        """A long explanation is cut to what a row keeps, and says it was cut."""
        rule = Rule(2, "x" * 2000, ("y",))
        assert len(rule.stored()) == 1000 and rule.stored().endswith("…")
