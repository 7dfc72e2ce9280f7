"""Prometheus metrics of the gateway (the API and attestor use the same library)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

MESSAGES = Counter("assetproof_gateway_messages_total", "Messages by outcome", ["outcome"])
QUARANTINED = Counter("assetproof_gateway_quarantined_total", "Messages quarantined, by reason", ["reason"])
QUEUE_DEPTH = Gauge("assetproof_gateway_queue_depth", "Messages received and not yet committed")
BATCH_SECONDS = Histogram(
    "assetproof_gateway_batch_seconds",
    "Time to classify and commit one batch",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
DB_ERRORS = Counter("assetproof_gateway_db_errors_total", "Failed batch commits (retried)")
CONNECTED = Gauge("assetproof_gateway_broker_connected", "1 while connected to the broker")
