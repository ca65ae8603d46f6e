"""The lookup stage: for a mapping with `lookup:`, the worker fetches what a webhook only
names (Meta's lead, by its id) before the rest of the mapping runs.

The intake plans a fetch per webhook (per item under `each`) and stores it with the event,
never calling out (relay/mapping/evaluate.py, relay/store/lookups.py); the worker claims the
due ones, GETs each (fetch.py), retries with the deliveries' backoff, maps the answer and
stores the delivery it maps to in the same transaction (runner.py).
"""
