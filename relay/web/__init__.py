"""The web app: webhooks (intake.py), health and metrics, the operators' API and console."""
