"""What tests share: real processes and logins, chains, devices, readings, databases and the
markers that say which of them a test needs. Fixtures that hand these out live in
tests/conftest.py; package-local helpers stay next to their tests."""
