"""Intake: platform apps and their credentials, the durable idempotent inbox, webhook receivers, pulls,
normalisation into canonical orders and ship confirmations back to the platforms."""
