"""Cal.com: `X-Cal-Signature-256` is the hex HMAC-SHA256 of the raw body, keyed with the
webhook's secret.

Facts from Cal.com's source and docs (docs/sources.md links them):
- `packages/features/webhooks/lib/sendPayload.ts`: the body is `{"triggerEvent",
  "createdAt", "payload"}` (JSON.stringify, posted as-is), signed by
  `createHmac("sha256", secret).update(body).digest("hex")`; without a secret the header
  says `no-secret-provided`, which no secret matches. A custom payload template that is not
  JSON is posted as application/x-www-form-urlencoded, signed the same way.
- The payload is a CalendarEvent (`packages/types/Calendar.d.ts`): `uid`, `attendees[]`
  (`name`, `email`, `timeZone`, `phoneNumber`), `responses` (every booking field, system
  and the event type's own, as `{label, value}`); the attendee's phone is the system field
  `responses.attendeePhoneNumber` when the event type asks for it, `smsReminderNumber` when
  the attendee asked for SMS reminders.
- No timestamp is signed, so a captured request can be resent: the dedup key (trigger and
  booking uid, else the body's digest) makes a resend a duplicate.
"""

from __future__ import annotations

from relay.sources.base import HmacPreset, HmacScheme


class CalCom(HmacPreset):
    name = "cal-com"
    secret_env = "CAL_WEBHOOK_SECRET"
    content_types = ("application/json", "application/x-www-form-urlencoded")
    body_digest = True  # the fallback key: a payload without a uid (an OOO entry, say)
    id = "body.payload.uid && concat(body.triggerEvent, ' ', body.payload.uid) || digest"
    scheme = HmacScheme("x-cal-signature-256", encoding="hex")
