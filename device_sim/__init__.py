"""Simulated devices: physics models, keys and the fleet runner that publishes signed readings."""
