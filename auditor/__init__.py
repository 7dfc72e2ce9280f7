"""Independent verification: a proof bundle or an epoch export, checked against the chain alone.

This package trusts the chain and the device keys registered on it, and nothing the operator
runs: it imports only :mod:`protocol` and the read-only part of :mod:`chain` (a test enforces it).
"""
