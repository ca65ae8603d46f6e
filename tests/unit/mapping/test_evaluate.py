"""Evaluating a mapping: envelope in, planned deliveries or every failing field out."""

from __future__ import annotations

from relay.mapping import evaluate

LEAD = """
filter: body.type == 'lead'
id: body.id
phone: {path: body.phone, region: IN}
attributes:
  name: body.name
  plan: {path: body.plan, default: free}
  email: {path: body.email, required: true}
  source: {value: crm}
  tags: body.tags
flows:
  - when: attributes.plan == 'vip' && phone != '919812345678'
    flow_key: VIP
  - when: headers."x-region" == 'north'
    flow_key: NORTH
  - flow_key: DEFAULT
"""


def envelope(body, headers=None, query=None):
    return {"body": body, "headers": headers or {}, "query": query or {}}


def lead(**fields):
    return {"type": "lead", "id": "L1", "phone": "9812345679", "email": "a@b.c", **fields}


class TestSingle:
    def test_plans_one_delivery(self, mapping):
        """A complete webhook becomes one delivery with its flow, phone, attributes and id."""
        result = evaluate(mapping(LEAD), envelope(lead(name="Asha", plan="vip")))
        assert result.status == "planned"
        (delivery,) = result.deliveries
        assert delivery.flow_key == "VIP"
        assert delivery.phone == "919812345679"
        assert delivery.channel == "whatsapp"
        assert delivery.dedup_key == "L1"
        assert delivery.attributes == {"name": "Asha", "plan": "vip", "email": "a@b.c",
                                       "source": "crm"}

    def test_missing_values_are_left_out_and_defaults_apply(self, mapping):
        """A missing attribute is not sent; one with a default gets the default."""
        result = evaluate(mapping(LEAD), envelope(lead(name="")))
        assert result.deliveries[0].attributes == {"plan": "free", "email": "a@b.c",
                                                   "source": "crm"}

    def test_flows_see_headers_and_fall_back(self, mapping):
        """`when` sees the envelope; without a match the fallback entry is used."""
        loaded = mapping(LEAD)
        north = evaluate(loaded, envelope(lead(), headers={"x-region": "north"}))
        assert north.deliveries[0].flow_key == "NORTH"
        assert evaluate(loaded, envelope(lead())).deliveries[0].flow_key == "DEFAULT"

    def test_when_sees_the_normalised_phone(self, mapping):
        """`phone` in `when` is the normalised number, not the raw value."""
        result = evaluate(mapping(LEAD), envelope(lead(plan="vip", phone="098123 45678")))
        assert result.deliveries[0].flow_key == "DEFAULT"

    def test_filter_false_is_skipped(self, mapping):
        """A webhook the filter refuses is skipped, not failed."""
        result = evaluate(mapping(LEAD), envelope({"type": "ping"}))
        assert result.status == "skipped"
        assert result.skipped == "filter"

    def test_ordering_text_against_a_number_is_null_not_a_crash(self, mapping):
        """`body.amount > `100`` with an amount sent as text: the filter is false (jmespath's
        interpreter raised TypeError here, which reached the sender as a 500)."""
        text = LEAD.replace("filter: body.type == 'lead'", "filter: body.amount > `100`")
        assert evaluate(mapping(text), envelope(lead(amount="abc"))).skipped == "filter"
        assert evaluate(mapping(text), envelope(lead(amount=150))).status == "planned"

    def test_a_function_given_what_it_cannot_take_fails_its_field_not_the_request(
            self, mapping):
        """contains() of text and a number (tags sent as one string) is a field error that
        names the function (it was Python's TypeError, a 500 to the sender)."""
        text = LEAD.replace("tags: body.tags", "vip: contains(body.tags, `7`)")
        result = evaluate(mapping(text), envelope(lead(tags="7,9")))
        assert result.status == "failed"
        assert [(e.field, e.message.split(":")[0]) for e in result.errors] == [
            ("attributes.vip", "contains()")]
        assert evaluate(mapping(text), envelope(lead(tags=[7, 9]))).status == "planned"

    def test_every_failing_field_is_listed(self, mapping):
        """No phone and no required email: both are reported at once."""
        result = evaluate(mapping(LEAD), envelope({"type": "lead", "phone": None}))
        assert result.status == "failed"
        assert [e.field for e in result.errors] == ["phone", "attributes.email"]
        assert str(result.errors[0]) == "phone: no value at body.phone"
        assert str(result.errors[1]) == "attributes.email: required, but no value at body.email"

    def test_invalid_phone_names_the_value(self, mapping):
        """An invalid number is an error naming the value."""
        result = evaluate(mapping(LEAD), envelope(lead(phone="12-34")))
        assert [str(e) for e in result.errors] == [
            "phone: '12-34' is not a valid phone number (region IN)"]

    def test_no_flow_matched(self, mapping):
        """Without a fallback, a webhook no `when` matches is an error."""
        loaded = mapping("phone: body.p\nflows: [{when: body.vip, flow_key: X}]\n")
        result = evaluate(loaded, envelope({"p": "+919812345678"}))
        assert [e.field for e in result.errors] == ["flows"]

    def test_runtime_type_error_is_a_field_error(self, mapping):
        """A function given the wrong type fails that field, never the process."""
        loaded = mapping("phone: body.p\nattributes: {n: length(body.n)}\nflows: [{flow_key: X}]\n")
        result = evaluate(loaded, envelope({"p": "+919812345678", "n": 5}))
        assert [e.field for e in result.errors] == ["attributes.n"]
        assert "length()" in result.errors[0].message

    def test_numeric_id_becomes_text(self, mapping):
        """A numeric dedup key is stored as text."""
        loaded = mapping("id: body.n\nphone: body.p\nflows: [{flow_key: X}]\n")
        result = evaluate(loaded, envelope({"p": "+919812345678", "n": 1042}))
        assert result.deliveries[0].dedup_key == "1042"

    def test_zero_is_true_in_when(self, mapping):
        """JMESPath truth: 0 is true (unlike Python), an empty string is false."""
        loaded = mapping("phone: body.p\nflows: [{when: body.n, flow_key: A}, {flow_key: B}]\n")
        assert evaluate(loaded, envelope({"p": "+14155552671", "n": 0})).deliveries[0].flow_key \
            == "A"
        assert evaluate(loaded, envelope({"p": "+14155552671", "n": ""})).deliveries[0].flow_key \
            == "B"


BATCH = """
each: body.events
filter: item.type != 'ping'
id: item.id
phone: item.phone
attributes:
  account: body.account
flows: [{flow_key: X}]
"""


class TestBatches:
    def test_one_delivery_per_item(self, mapping):
        """`each` splits a batch; `item` is the element, `body` still the whole body."""
        body = {"account": "acme", "events": [
            {"id": "e1", "phone": "+919812345678"},
            {"id": "e2", "type": "ping"},
            {"id": "e3", "phone": "+14155552671"},
        ]}
        result = evaluate(mapping(BATCH), envelope(body))
        assert [(d.dedup_key, d.phone, d.item) for d in result.deliveries] == [
            ("e1", "919812345678", 0), ("e3", "14155552671", 2)]
        assert all(d.attributes == {"account": "acme"} for d in result.deliveries)

    def test_failing_items_are_reported_with_their_index(self, mapping):
        """A bad item fails alone; the others are still planned."""
        body = {"events": [{"id": "e1", "phone": "+919812345678"}, {"id": "e2"}]}
        result = evaluate(mapping(BATCH), envelope(body))
        assert len(result.deliveries) == 1
        assert [str(e) for e in result.errors] == ["each[1].phone: no value at item.phone"]

    def test_empty_batch_is_skipped(self, mapping):
        """An empty list has nothing to deliver and nothing wrong."""
        assert evaluate(mapping(BATCH), envelope({"events": []})).status == "skipped"

    def test_all_items_filtered_is_skipped(self, mapping):
        """When the filter refuses every item, the webhook is skipped."""
        result = evaluate(mapping(BATCH), envelope({"events": [{"type": "ping"}]}))
        assert result.status == "skipped"

    def test_each_must_give_a_list(self, mapping):
        """`each` that points at an object is an error that says what it got."""
        result = evaluate(mapping(BATCH), envelope({"events": {"id": 1}}))
        assert [str(e) for e in result.errors] == ["each: expected a list, got an object"]
