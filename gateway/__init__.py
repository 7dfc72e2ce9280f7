"""MQTT ingest: decode, verify, sequence and plausibility checks, quarantine, idempotent persistence."""
