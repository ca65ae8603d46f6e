"""What an alert says (relay/alerts/messages.py): the relay.alert/1 payload, Slack's text,
the email, and the scrubbing of error texts."""

from __future__ import annotations

from relay.alerts.messages import SCHEMA, email, payload, scrub, slack
from relay.alerts.rules import Condition

NOW = 1_700_000_000.0
COND = Condition("dead:leads:rejected", "dead", "2 deliveries of leads went dead (rejected)",
                 "2 went dead in the last 15m.", "leads", "rejected", 2,
                 "Engati answered HTTP 400 with status 1002 bad phone +91 98123 45678 "
                 "for asha@example.com, see https://api.engati.ai/bot/0a1b2c3d?key=sk_live_X")


class TestScrub:
    def test_phone_numbers_emails_tokens_and_url_paths_are_masked(self):
        """An error text may quote what Engati echoed; nothing personal or secret stays."""
        text = scrub(COND.last_error)
        for leak in ("98123", "45678", "asha@", "0a1b2c3d", "sk_live", "key="):
            assert leak not in text
        assert "HTTP 400" in text and "status 1002" in text  # what helps stays
        assert "[number]" in text and "[email]" in text and "https://api.engati.ai/…" in text

    def test_configured_secrets_are_removed(self):
        """A secret the relay knows is removed wherever it appears."""
        assert scrub("bad key demo-key-123 here", ["demo-key-123"]) == "bad key [secret] here"

    def test_long_texts_are_cut(self):
        """An error is at most ERROR_CHARS characters in a message."""
        assert len(scrub("x " * 1000)) == 500


class TestFormats:
    def message(self, link="https://relay.example.com/admin/failures"):
        return payload(COND, "firing", link=link, at=NOW, since=NOW - 60,
                       message_id="dead:leads:rejected#1")

    def test_payload_fields(self):
        """The JSON message has the documented fields, dates in UTC ISO 8601."""
        message = self.message()
        assert message["schema"] == SCHEMA == "relay.alert/1"
        assert {k: message[k] for k in ("kind", "key", "state", "mapping", "failure", "count",
                                        "id", "at", "since", "mappings")} == {
            "kind": "dead", "key": "dead:leads:rejected", "state": "firing",
            "mapping": "leads", "failure": "rejected", "count": 2,
            "id": "dead:leads:rejected#1", "at": "2023-11-14T22:13:20Z",
            "since": "2023-11-14T22:12:20Z", "mappings": ["leads"]}
        assert "45678" not in message["last_error"]

    def test_slack_text(self):
        """Slack gets one mrkdwn text: state, title, the error, a link; <>& escaped."""
        text = slack(self.message())["text"]
        assert text.startswith(":red_circle: *FIRING* 2 deliveries of leads went dead")
        assert "<https://relay.example.com/admin/failures|Failures inbox>" in text
        assert "Last error: `Engati answered HTTP 400" in text
        cond = Condition("k", "dead", "a <b> & c", "t")
        escaped = slack(payload(cond, "resolved", link="/admin/failures", at=NOW, since=None,
                                message_id="k#2"))["text"]
        assert "a &lt;b&gt; &amp; c" in escaped
        assert "Failures inbox: /admin/failures (set RELAY_PUBLIC_URL" in escaped

    def test_email(self):
        """A plain-text mail: the subject says the state and title, the body the fields."""
        mail = email(self.message(), "relay@example.com", ["a@example.com", "b@example.com"])
        assert mail["Subject"] == "[relay] FIRING: 2 deliveries of leads went dead (rejected)"
        assert (mail["From"], mail["To"]) == ("relay@example.com", "a@example.com, b@example.com")
        body = mail.get_content()
        assert "Failures inbox: https://relay.example.com/admin/failures" in body
        assert "count: 2" in body and "failure: rejected" in body
        assert "asha" not in body
