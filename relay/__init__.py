"""relay: a self-hosted webhook relay for Engati chatbots."""
