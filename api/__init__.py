"""assetproof's HTTP API (FastAPI): REST for engineers, auditors and investors, and the
dashboard's static files. ``api.app.create_app`` builds it; ``assetproof api`` serves it.

It may import ``protocol``, ``store`` and ``attestor`` only (DESIGN.md): it never talks to the
chain, and nothing it serves is trusted by an auditor until checked against the chain.
"""
