"""The registrar's tools: what an installer, certifier or the issuer's trustee checks before it
registers a device key on chain. :mod:`registrar.attestation` verifies a key's manufacturer
certificate chain and gives the hash the DeviceRegistry records."""
