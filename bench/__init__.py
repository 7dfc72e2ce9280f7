"""Benchmarks, each runnable as ``python -m bench.NAME`` and printing one JSON object."""
