"""Source presets: what the relay knows about each sender.

A preset parses its sender's body, checks its signature on the raw bytes, names where its
event id is and how its batches split (defaults for a mapping's `id` and `each`), and says how
the sender must be answered. `PRESETS` maps each `source:` name to its preset. An `Endpoint`
(endpoint.py) is a mapping file loaded: its mapping, its preset and the sender's secrets.
"""

from __future__ import annotations

from relay.sources.base import Inbound, Preset
from relay.sources.endpoint import Endpoint, evaluate_answered, evaluate_raw, load_endpoint
from relay.sources.folder import load_folder, mapping_files
from relay.sources.presets import PRESETS

__all__ = ["PRESETS", "Endpoint", "Inbound", "Preset", "evaluate_answered", "evaluate_raw",
           "load_endpoint", "load_folder", "mapping_files"]
