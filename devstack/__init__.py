"""The local infrastructure that the demo, the benchmarks and the tests start: brokers
(Mosquitto, the embedded amqtt fallback) and their logins, access rules and TLS files, a local
anvil, and provisioning a fleet into keystore, store, chain and broker at once.

Imported by ``cli``, ``demo``, ``bench`` and ``tests`` only, never by a service (gateway,
attestor, api, auditor): what runs in production must not depend on how a laptop starts things.
"""
