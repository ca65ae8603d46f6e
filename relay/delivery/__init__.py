"""Delivery: stored deliveries become calls to Engati's API Trigger, retried until accepted.

request.py builds a call (pure: previews use it too), engati.py makes it (over http.py's
keep-alive connections) and judges the answer; worker.py runs the loop, with pacing.py
(when calls may start), policy.py (what an outcome leaves a delivery with), recorder.py
(outcomes written in batches) and upkeep.py (search indexing, checkpoints, retention)
around it. Nothing here imports the web package.
"""
