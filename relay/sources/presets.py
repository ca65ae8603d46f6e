"""`PRESETS`: each `source:` name a mapping file may give, and its preset."""

from __future__ import annotations

from relay.sources.base import Preset
from relay.sources.cal_com import CalCom
from relay.sources.calendly import Calendly
from relay.sources.cashfree import Cashfree
from relay.sources.generic import Generic
from relay.sources.github import GitHub
from relay.sources.google_ads import GoogleAds
from relay.sources.hubspot import HubSpot
from relay.sources.jotform import Jotform
from relay.sources.meta import MetaLeadAds
from relay.sources.razorpay import Razorpay
from relay.sources.salesforce import Salesforce
from relay.sources.shopify import Shopify
from relay.sources.standard_webhooks import StandardWebhooks
from relay.sources.stripe import Stripe
from relay.sources.tally import Tally
from relay.sources.typeform import Typeform
from relay.sources.webflow import Webflow
from relay.sources.woocommerce import WooCommerce

PRESETS: dict[str, Preset] = {
    preset.name: preset
    for preset in (Generic(), Typeform(), Stripe(), Salesforce(), Shopify(), Razorpay(),
                   HubSpot(), StandardWebhooks(), Tally(), Calendly(), GitHub(), Jotform(),
                   MetaLeadAds(), WooCommerce(), Cashfree(), CalCom(), Webflow(),
                   GoogleAds())
}
