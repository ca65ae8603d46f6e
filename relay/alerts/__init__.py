"""Alerts: tell the operator when deliveries die, fail, wait, or cannot start, and when that
clears (docs/operations.md, "Alerts").

    targets.py   the settings read into what to judge and where to send (validated)
    rules.py     pure: the facts of the database and the registry -> the active conditions
    messages.py  a condition -> the relay.alert/1 payload, Slack's text, an email; scrubbed
    channels.py  sending: a JSON or Slack POST (httpx), an email (smtplib), with timeouts
    alerter.py   the worker's chore: conditions -> state transitions and an outbox in the
                 database (once across workers), the outbox sent, paced and retried

Nothing here is on the delivery path: the worker runs the alerter on a thread of its own.
"""
