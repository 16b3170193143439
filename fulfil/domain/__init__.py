"""The belt's domain: typed mappings and the state machines."""
