"""Source presets: what the relay knows about each sender.

A preset parses its sender's body, checks its signature on the raw bytes, names where its
event id is and how its batches split (defaults for a mapping's `id` and `each`), and says how
the sender must be answered. `PRESETS` maps each `source:` name to its preset.
"""

from __future__ import annotations

from relay.sources.base import Inbound, Preset
from relay.sources.calendly import Calendly
from relay.sources.generic import Generic
from relay.sources.github import GitHub
from relay.sources.hubspot import HubSpot
from relay.sources.jotform import Jotform
from relay.sources.razorpay import Razorpay
from relay.sources.salesforce import Salesforce
from relay.sources.shopify import Shopify
from relay.sources.standard_webhooks import StandardWebhooks
from relay.sources.stripe import Stripe
from relay.sources.tally import Tally
from relay.sources.typeform import Typeform

PRESETS: dict[str, Preset] = {
    preset.name: preset
    for preset in (Generic(), Typeform(), Stripe(), Salesforce(), Shopify(), Razorpay(),
                   HubSpot(), StandardWebhooks(), Tally(), Calendly(), GitHub(), Jotform())
}

__all__ = ["PRESETS", "Inbound", "Preset"]
