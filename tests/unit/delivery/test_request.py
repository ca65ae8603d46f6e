"""The Engati request a delivery becomes: v1 and v2, WhatsApp and RCS."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import pytest

from relay.delivery.request import build_request
from relay.mapping import Delivery, Engati

TARGET = Engati("123456", "0a1b2c3d4e5f6a7b", "raw-api-key", "v2", "https://api.engati.ai")
ATTRS = {"name": "Asha", "score": 87, "vip": True, "ratio": 0.5, "tags": ["a", "b"],
         "meta": {"k": "v"}}


def delivery(channel="whatsapp"):
    return Delivery("FLOWKEY", channel, "919812345678", dict(ATTRS))


@pytest.mark.parametrize("channel", ["whatsapp", "rcs"])
def test_v2_is_a_json_body(channel):
    """v2: the flow path, Basic with the raw key, and a flat JSON body with typed values."""
    request = build_request(TARGET, delivery(channel))
    assert request["method"] == "POST"
    assert request["url"] == ("https://api.engati.ai/bot-api/v2.0/customer/123456/bot/"
                              "0a1b2c3d4e5f6a7b/flow/FLOWKEY")
    assert request["headers"] == {"Authorization": "Basic raw-api-key",
                                  "Content-Type": "application/json"}
    assert request["json"] == {
        "user.channel": channel, "user.phone_no": "919812345678", "name": "Asha", "score": 87,
        "vip": True, "ratio": 0.5, "tags": '["a","b"]', "meta": '{"k":"v"}'}


def test_v1_is_a_query_string():
    """v1: the same keys as text in the query string, and no body."""
    target = Engati("123456", "0a1b2c3d4e5f6a7b", "raw-api-key", "v1", "https://api.engati.ai")
    request = build_request(target, delivery())
    url = urlsplit(request["url"])
    assert url.path == "/bot-api/v1.0/customer/123456/bot/0a1b2c3d4e5f6a7b/flow/FLOWKEY"
    assert dict(parse_qsl(url.query)) == {
        "user.channel": "whatsapp", "user.phone_no": "919812345678", "name": "Asha",
        "score": "87", "vip": "true", "ratio": "0.5", "tags": '["a","b"]', "meta": '{"k":"v"}'}
    assert request["json"] is None
    assert request["headers"] == {"Authorization": "Basic raw-api-key"}


def test_mask_hides_the_key():
    """A masked request shows no part of the API key."""
    request = build_request(TARGET, delivery(), mask=True)
    assert request["headers"]["Authorization"] == "Basic ***"
    assert "raw-api-key" not in str(request)


def test_missing_settings_show_what_to_set():
    """Unset settings appear as the environment variable to set."""
    request = build_request(Engati(None, None, None), delivery())
    assert "/customer/${ENGATI_CUSTOMER_ID}/bot/${ENGATI_BOT_KEY}/" in request["url"]
    assert request["headers"]["Authorization"] == "Basic ${ENGATI_API_KEY}"
