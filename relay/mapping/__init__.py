"""Mappings: a YAML file compiled (load.py) and applied to a webhook (evaluate.py).

Pure: nothing here reads the clock, the network or the database.
"""

from relay.mapping.evaluate import evaluate, evaluate_raw
from relay.mapping.model import Attribute, Delivery, Engati, Expr, Flow, Mapping, Phone, Result

__all__ = ["Attribute", "Delivery", "Engati", "Expr", "Flow", "Mapping", "Phone", "Result",
           "evaluate", "evaluate_raw"]
