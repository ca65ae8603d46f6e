"""Mappings: a YAML text compiled (load.py) and applied to a webhook envelope (evaluate.py).

Pure: nothing here reads files, the environment, the clock, the network or the database, and
nothing of the relay is imported but relay.errors and relay.model. The sender's side (presets,
secrets, reading the file, parsing raw bodies) is in relay/sources.
"""

from relay.mapping.evaluate import evaluate, evaluate_fetched
from relay.mapping.model import (
    Attribute,
    Delivery,
    Engati,
    Expr,
    Fetch,
    Flow,
    Lookup,
    Mapping,
    Phone,
    Result,
    Rule,
    unset_engati,
)

__all__ = ["Attribute", "Delivery", "Engati", "Expr", "Fetch", "Flow", "Lookup", "Mapping",
           "Phone", "Result", "Rule", "evaluate", "evaluate_fetched", "unset_engati"]
