"""Delivery: stored deliveries become calls to Engati's API Trigger, retried until accepted."""
