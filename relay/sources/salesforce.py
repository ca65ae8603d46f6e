"""Salesforce Outbound Messages: SOAP 1.1, up to 100 Notifications per message, unsigned.

The body expressions see is the `notifications` element (`OrganizationId`, `ActionId`, ...,
`Notification` always a list), split into one delivery per Notification, deduplicated by its
Id. Salesforce signs nothing, so the OrganizationId must be one the mapping names. It must be
answered with `<Ack>true</Ack>`, or it retries for 24 hours.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape

from relay.errors import BodyError, SignatureError
from relay.sources.base import Inbound, Preset
from relay.sources.body import parse_xml

if TYPE_CHECKING:
    from relay.mapping.yamlfile import Report
    from relay.sources.endpoint import Endpoint

_ENVELOPE = ('<?xml version="1.0" encoding="UTF-8"?>\n'
             '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">'
             "<soapenv:Body>{}</soapenv:Body></soapenv:Envelope>")
ACK = _ENVELOPE.format('<notificationsResponse xmlns="http://soap.sforce.com/2005/09/outbound">'
                       "<Ack>true</Ack></notificationsResponse>")


MAX_NOTIFICATIONS = 100  # what Salesforce sends at most in one message


class Salesforce(Preset):
    name = "salesforce"
    content_types = ("text/xml",)
    each = "body.Notification"
    id = "item.Id"

    def parse(self, raw: bytes, content_type: str | None) -> Any:
        document = parse_xml(raw)
        try:
            notifications = document["Envelope"]["Body"]["notifications"]
        except (KeyError, TypeError):
            raise BodyError("not a Salesforce Outbound Message: no soapenv:Body/notifications "
                            "element") from None
        if not isinstance(notifications, dict):
            raise BodyError("the notifications element is empty")
        found = notifications.get("Notification")
        found = found if isinstance(found, list) else ([] if found is None else [found])
        if len(found) > MAX_NOTIFICATIONS:
            raise BodyError(f"{len(found)} Notifications in one message; Salesforce sends at "
                            f"most {MAX_NOTIFICATIONS}")
        if not all(isinstance(n, dict) for n in found):
            raise BodyError("a Notification element has no fields")
        organization = notifications.get("OrganizationId")
        if organization is not None and not isinstance(organization, str):
            raise BodyError("OrganizationId must appear once, as text")
        notifications["Notification"] = found
        return notifications

    def validate(self, report: Report, data: dict[str, Any]) -> None:
        super().validate(report, data)
        if data.get("verify") is not False and "organization_id" not in data:
            report.add(("source",), "Salesforce signs nothing: add organization_id: <your org "
                       "id> (Setup > Company Information), or verify: false")

    def verifies(self, endpoint: Endpoint) -> bool:
        return endpoint.verify is not False

    def verify(self, endpoint: Endpoint, inbound: Inbound, now: float) -> None:
        """Nothing to check on the raw bytes: the OrganizationId is checked once parsed."""

    def admit(self, endpoint: Endpoint, envelope: dict[str, Any]) -> None:
        if endpoint.verify is False:
            return
        organization = envelope["body"].get("OrganizationId")
        # Salesforce shows 15-character ids in Setup and sends 18: compare the first 15.
        if not organization or organization[:15] not in {o[:15] for o in endpoint.organizations}:
            raise SignatureError(f"OrganizationId {organization!r} is not in organization_id")

    def respond(self, status: int, answer: dict[str, Any]) -> tuple[int, bytes, str]:
        if status < 300:
            return 200, ACK.encode(), "text/xml; charset=utf-8"
        message = answer.get("error") or answer.get("status", "error")
        fault = ("<soapenv:Fault><faultcode>soapenv:{}</faultcode><faultstring>{}</faultstring>"
                 "</soapenv:Fault>").format("Client" if status < 500 else "Server",
                                            escape(str(message)))
        return status, _ENVELOPE.format(fault).encode(), "text/xml; charset=utf-8"
