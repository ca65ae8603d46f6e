"""WooCommerce and Cashfree: their signatures against worked vectors (neither publishes a
Python verifier we can install: WooCommerce is PHP; cashfree-pg pins urllib3<2.1), the
WooCommerce ping answered 200 and recorded once as skipped, and forged, stale or tampered
webhooks answered 401 with nothing stored, through the relay's own WSGI stack."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import pytest

from relay.errors import SignatureError
from relay.sources import Inbound, load_endpoint
from tests.support.admin_app import serve_folder

WC_SECRET = "wc-secret"
CF_SECRET = "cfsk_ma_test_secret"
# Worked vectors, computed apart from the relay:
#   printf '%s' "$WC_BODY" | openssl dgst -sha256 -hmac wc-secret -binary | base64
WC_BODY = b'{"id":4750,"status":"processing","billing":{"phone":"9812345678"}}'
WC_SIGNATURE = "RavN3iwSMrX1tvFwXcIsydTpBJ2YqyPLIEN9r6EibMw="
#   { printf '%s' 1764062000000; printf '%s' "$CF_BODY"; } \
#     | openssl dgst -sha256 -hmac cfsk_ma_test_secret -binary | base64
CF_BODY = (b'{"data":{"payment":{"cf_payment_id":"1453002795","payment_status":"SUCCESS"}},'
           b'"type":"PAYMENT_SUCCESS_WEBHOOK"}')
CF_STAMP = "1764062000000"  # milliseconds
CF_SIGNATURE = "7m0NUKC3l815F93HNnYYy0jr5DBUUMfEa4s/LFDedp8="

WOOCOMMERCE = f"""\
source: woocommerce
secret: {WC_SECRET}
filter: body.status == 'processing'
phone: {{path: body.billing.phone, region: IN}}
flows: [{{flow_key: F}}]
"""
CASHFREE = f"""\
source: cashfree
secret: {CF_SECRET}
phone: {{path: body.data.customer_details.customer_phone, region: IN}}
flows: [{{flow_key: F}}]
"""
JSON = "application/json"


def wc_signature(raw: bytes, secret: str = WC_SECRET) -> str:
    return base64.b64encode(hmac.new(secret.encode(), raw, hashlib.sha256).digest()).decode()


def cf_headers(raw: bytes, stamp: str, secret: str = CF_SECRET) -> dict[str, str]:
    digest = hmac.new(secret.encode(), stamp.encode() + raw, hashlib.sha256).digest()
    return {"x-webhook-signature": base64.b64encode(digest).decode(),
            "x-webhook-timestamp": stamp, "x-webhook-version": "2025-01-01"}


def now_ms(offset: float = 0) -> str:
    return str(int((time.time() + offset) * 1000))


@pytest.fixture
def woocommerce(write_mapping):
    return load_endpoint(write_mapping(WOOCOMMERCE, name="shop"), env={})


@pytest.fixture
def cashfree(write_mapping):
    return load_endpoint(write_mapping(CASHFREE, name="pay"), env={})


class TestWooCommerceSignature:
    def test_the_worked_vector_is_accepted(self, woocommerce):
        """base64 HMAC-SHA256 of the raw body, keyed with the webhook's secret."""
        woocommerce.preset.verify(woocommerce, Inbound(WC_BODY, {
            "x-wc-webhook-signature": WC_SIGNATURE}), time.time())

    def test_relay_send_signs_as_woocommerce_does(self, woocommerce):
        headers, _ = woocommerce.preset.sign(WC_SECRET, woocommerce, Inbound(WC_BODY, {}),
                                             time.time())
        assert headers == {"x-wc-webhook-signature": WC_SIGNATURE}

    @pytest.mark.parametrize("headers", [
        {}, {"x-wc-webhook-signature": wc_signature(WC_BODY, "another")},
        {"x-wc-webhook-signature": wc_signature(WC_BODY + b" ")},
        {"x-wc-webhook-signature": hmac.new(WC_SECRET.encode(), WC_BODY,
                                            hashlib.sha256).hexdigest()}])  # hex, not base64
    def test_missing_forged_tampered_and_hex_are_refused(self, woocommerce, headers):
        with pytest.raises(SignatureError):
            woocommerce.preset.verify(woocommerce, Inbound(WC_BODY, headers), time.time())

    @pytest.mark.parametrize("raw", [b"webhook_id=", b"webhook_id=3&x=1", b"webhook_id=3\n",
                                     b"webhook_id=" + b"9" * 21, b'{"webhook_id":3}'])
    def test_only_the_exact_ping_body_goes_unsigned(self, woocommerce, raw):
        """Anything but `webhook_id=<digits>` needs the signature like any other webhook."""
        assert not woocommerce.preset.unsigned(Inbound(raw, {}))
        with pytest.raises(SignatureError):
            woocommerce.preset.verify(woocommerce, Inbound(raw, {}), time.time())

    def test_a_ping_with_a_wrong_signature_is_refused(self, woocommerce):
        """A ping that carries a signature (a site's filter adds one) must carry a good one."""
        with pytest.raises(SignatureError):
            woocommerce.preset.verify(woocommerce, Inbound(b"webhook_id=3", {
                "x-wc-webhook-signature": wc_signature(b"webhook_id=3", "another")}), 0)

    def test_the_default_id_is_the_signed_body_not_the_delivery_id(self, write_mapping):
        """X-WC-Webhook-Delivery-ID is neither signed nor unique: the body's SHA-256 is the id."""
        endpoint = load_endpoint(write_mapping(WOOCOMMERCE.replace(
            "filter: body.status == 'processing'\n", ""), name="shop"), env={})
        result = endpoint.evaluate_raw(WC_BODY, {"content-type": JSON,
                                                 "x-wc-webhook-delivery-id": "abc"}, {})
        assert [d.dedup_key for d in result.deliveries] == [hashlib.sha256(WC_BODY).hexdigest()]


class TestCashfreeSignature:
    def test_the_worked_vector_is_accepted(self, cashfree):
        """base64 HMAC-SHA256 of timestamp + raw body, keyed with the client secret; the
        timestamp in milliseconds."""
        cashfree.preset.verify(cashfree, Inbound(CF_BODY, {
            "x-webhook-signature": CF_SIGNATURE, "x-webhook-timestamp": CF_STAMP}),
            int(CF_STAMP) / 1000 + 10)

    def test_relay_send_signs_as_cashfree_does(self, cashfree):
        headers, _ = cashfree.preset.sign(CF_SECRET, cashfree, Inbound(CF_BODY, {}),
                                          int(CF_STAMP) / 1000)
        assert headers == {"x-webhook-signature": CF_SIGNATURE,
                           "x-webhook-timestamp": CF_STAMP}

    @pytest.mark.parametrize("offset", [-301, 301])
    def test_a_timestamp_five_minutes_off_is_refused(self, cashfree, offset):
        """Stale (a replay) or from the future, either way by more than 300 s."""
        stamp = now_ms(offset)
        with pytest.raises(SignatureError) as info:
            cashfree.preset.verify(cashfree, Inbound(CF_BODY, cf_headers(CF_BODY, stamp)),
                                   time.time())
        assert "timestamp" in info.value.reason

    def test_seconds_are_not_milliseconds(self, cashfree):
        """A timestamp in seconds reads as 1970: refused, not accepted by accident."""
        stamp = str(int(time.time()))
        with pytest.raises(SignatureError):
            cashfree.preset.verify(cashfree, Inbound(CF_BODY, cf_headers(CF_BODY, stamp)),
                                   time.time())

    @pytest.mark.parametrize("change", ["body", "timestamp", "secret", "no-timestamp"])
    def test_tampered_or_forged_is_refused(self, cashfree, change):
        stamp = now_ms()
        headers = cf_headers(CF_BODY, stamp, "another" if change == "secret" else CF_SECRET)
        raw = CF_BODY + b" " if change == "body" else CF_BODY
        if change == "timestamp":  # within tolerance, but not the one signed
            headers["x-webhook-timestamp"] = str(int(stamp) + 1)
        if change == "no-timestamp":
            del headers["x-webhook-timestamp"]
        with pytest.raises(SignatureError):
            cashfree.preset.verify(cashfree, Inbound(raw, headers), time.time())

    def test_the_id_is_the_type_and_payment(self, cashfree):
        """Each payment attempt has its own cf_payment_id (a number in older versions); a
        body without one falls back to its SHA-256."""
        result = cashfree.evaluate_raw(json.dumps({
            "type": "PAYMENT_SUCCESS_WEBHOOK", "data": {"payment": {"cf_payment_id": 1104403192},
                                                        "customer_details": {
                                                            "customer_phone": "9812345678"}}}
        ).encode(), {"content-type": JSON}, {})
        assert [d.dedup_key for d in result.deliveries] == ["PAYMENT_SUCCESS_WEBHOOK:1104403192"]
        raw = b'{"type":"REFUND_STATUS_WEBHOOK","data":{"customer_details":' \
              b'{"customer_phone":"9812345678"}}}'
        result = cashfree.evaluate_raw(raw, {"content-type": JSON}, {})
        assert [d.dedup_key for d in result.deliveries] == [hashlib.sha256(raw).hexdigest()]


@pytest.fixture
def relay(tmp_path):
    folder = tmp_path / "mappings"
    folder.mkdir()
    (folder / "shop.yaml").write_text(WOOCOMMERCE)
    (folder / "pay.yaml").write_text(CASHFREE)

    def serve(**settings):
        served = serve_folder(folder, tmp_path / "relay.db", **settings)
        opened.append(served.store)
        return served.client(), served.store

    opened: list = []
    yield serve
    for store in opened:
        store.dispose()


class TestOverHttp:
    def test_the_ping_is_answered_200_and_recorded_once_as_skipped(self, relay):
        """Saving a webhook in WooCommerce posts `webhook_id=<n>`, unsigned, and fails unless
        the answer is exactly 200; a second save is a duplicate, not a second event."""
        http, store = relay()
        form = "application/x-www-form-urlencoded"
        first = http.post("/hooks/shop", data=b"webhook_id=3", content_type=form)
        assert first.status_code == 200, first.get_data(as_text=True)
        assert first.get_json()["status"] == "skipped"
        again = http.post("/hooks/shop", data=b"webhook_id=3")  # no Content-Type at all
        assert again.status_code == 200 and again.get_json()["status"] == "duplicate"
        events = store.events()
        assert [(e["status"], e["mapping"]) for e in events] == [("skipped", "shop")]

    def test_unsigned_pings_are_rate_limited(self, relay):
        """Anyone can post a ping: past RELAY_UNVERIFIED_LIMIT a minute they get 429."""
        http, store = relay(unverified_limit=2)
        codes = [http.post("/hooks/shop", data=f"webhook_id={n}".encode()).status_code
                 for n in range(3)]
        assert codes == [200, 200, 429]
        assert len(store.events()) == 2

    def test_a_signed_order_is_answered_200_not_202(self, relay):
        """WooCommerce and Cashfree are answered 200 for an accepted webhook."""
        http, store = relay()
        order = http.post("/hooks/shop", data=WC_BODY, content_type=JSON,
                          headers={"X-WC-Webhook-Signature": WC_SIGNATURE,
                                   "X-WC-Webhook-Topic": "order.updated"})
        assert order.status_code == 200 and order.get_json()["status"] == "accepted"
        payment = http.post("/hooks/pay", data=_cf_payment(), content_type=JSON,
                            headers=cf_headers(_cf_payment(), now_ms()))
        assert payment.status_code == 200 and payment.get_json()["status"] == "accepted"
        assert len(store.events()) == 2

    def test_an_order_that_cannot_be_mapped_is_stored_and_answered_200(self, relay):
        """WooCommerce does not retry and disables a webhook after 5 failures in a row: an
        order without a phone is stored as failed (replayable) and answered 200, not 422."""
        http, store = relay()
        raw = b'{"id":4752,"status":"processing","billing":{"phone":""}}'
        answer = http.post("/hooks/shop", data=raw, content_type=JSON,
                           headers={"X-WC-Webhook-Signature": wc_signature(raw)})
        assert answer.status_code == 200 and answer.get_json()["status"] == "failed"
        assert [e["status"] for e in store.events()] == ["failed"]
        payment = json.loads(_cf_payment())
        payment["data"]["customer_details"]["customer_phone"] = ""
        raw = json.dumps(payment).encode()
        answer = http.post("/hooks/pay", data=raw, content_type=JSON,
                           headers=cf_headers(raw, now_ms()))
        assert answer.status_code == 422  # Cashfree retries it: the retry is a duplicate
        retry = http.post("/hooks/pay", data=raw, content_type=JSON,
                          headers=cf_headers(raw, now_ms()))
        assert retry.status_code == 200 and retry.get_json()["status"] == "duplicate"
        assert [e["status"] for e in store.events()] == ["failed", "failed"]

    @pytest.mark.parametrize("case", ["forged", "tampered", "unsigned-order"])
    def test_woocommerce_forgeries_are_401_with_nothing_stored(self, relay, case):
        http, store = relay()
        signature = wc_signature(WC_BODY, "another") if case == "forged" else WC_SIGNATURE
        raw = WC_BODY.replace(b"9812345678", b"9000000000") if case == "tampered" else WC_BODY
        headers = {} if case == "unsigned-order" else {"X-WC-Webhook-Signature": signature}
        answer = http.post("/hooks/shop", data=raw, content_type=JSON, headers=headers)
        assert answer.status_code == 401 and answer.get_json()["error"] == "invalid signature"
        assert store.events() == []

    @pytest.mark.parametrize("case", ["forged", "tampered", "stale"])
    def test_cashfree_forgeries_are_401_with_nothing_stored(self, relay, case):
        http, store = relay()
        raw = _cf_payment()
        headers = cf_headers(raw, now_ms(-400) if case == "stale" else now_ms(),
                             "another" if case == "forged" else CF_SECRET)
        if case == "tampered":
            raw = raw.replace(b"9812345678", b"9000000000")
        answer = http.post("/hooks/pay", data=raw, content_type=JSON, headers=headers)
        assert answer.status_code == 401 and answer.get_json()["error"] == "invalid signature"
        assert store.events() == []


def _cf_payment() -> bytes:
    return json.dumps({"data": {"payment": {"cf_payment_id": "1453002795",
                                            "payment_status": "SUCCESS"},
                                "customer_details": {"customer_phone": "9812345678"}},
                       "type": "PAYMENT_SUCCESS_WEBHOOK"}).encode()
