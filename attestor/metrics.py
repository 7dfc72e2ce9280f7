"""Prometheus metrics of the attestor (the gateway and the API use the same library, and
``assetproof attestor --metrics-port`` serves them)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EPOCHS_CLOSED = Counter("assetproof_attestor_epochs_closed_total", "Epochs closed")
EPOCHS_ANCHORED = Counter("assetproof_attestor_epochs_anchored_total", "Epochs anchored on chain")
GAS_USED = Counter("assetproof_attestor_gas_used_total", "Gas spent on anchors")
CHAIN_ERRORS = Counter(
    "assetproof_attestor_chain_errors_total",
    "Chain calls that failed, by kind: unavailable (retried) or revert (the chain refused a checkpoint)",
    ["kind"],
)
READINGS_APPENDED = Counter("assetproof_attestor_readings_appended_total", "Readings appended to the Merkle log")
ANCHOR_SECONDS = Histogram(
    "assetproof_attestor_anchor_seconds",
    "From sending an anchor to recording it (receipt included)",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
LOG_SIZE = Gauge("assetproof_attestor_log_size", "Leaves in the Merkle log")
PENDING_EPOCHS = Gauge("assetproof_attestor_epochs_pending", "Closed epochs not anchored yet")
LAST_ANCHORED_EPOCH = Gauge("assetproof_attestor_last_anchored_epoch", "Number of the newest anchored epoch")
LEADING = Gauge("assetproof_attestor_leading", "1 while this attestor holds the leader lock")
