"""Microseconds per evaluation of the Typeform example mapping (compile once, evaluate many).

    .venv/bin/python benchmarks/mapping.py [N]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from relay.mapping import evaluate
from relay.sources import evaluate_raw, load_endpoint

ROOT = Path(__file__).resolve().parent.parent


def per_call_us(fn, n: int) -> float:
    fn()  # warm up
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - start) / n)
    return best * 1e6


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    endpoint = load_endpoint(ROOT / "mappings" / "typeform-leads.yaml", env={})
    mapping = endpoint.mapping
    raw = (ROOT / "mappings" / "examples" / "typeform-vip.json").read_bytes()
    headers = {"Content-Type": "application/json"}
    envelope = endpoint.preset.envelope(raw, headers, {})
    assert evaluate(mapping, envelope).status == "planned"
    print(f"typeform-leads, {len(raw)} byte body, best of 5 x {n}:")
    figure = per_call_us(lambda: evaluate(mapping, envelope), n)
    print(f"  evaluate (parsed envelope):  {figure:7.1f} us")
    print(f"  parse JSON + evaluate:       "
          f"{per_call_us(lambda: evaluate_raw(endpoint, raw, headers, {}), n):7.1f} us")


if __name__ == "__main__":
    main()
