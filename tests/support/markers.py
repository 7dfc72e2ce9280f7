"""Which real service a test needs, as a marker, decided from what it uses, never written by hand:
``-m "not e2e and not browser"`` is then the fast subset, and ``-m postgres`` what to run after
touching the PostgreSQL paths.

A test gets a marker when its fixtures (their whole closure, ``item.fixturenames``) include one
that starts that service, when a parametrised database fixture runs on PostgreSQL, or when its
module starts the service inline (listed in ``MODULE_MARKERS``, with why). The markers
themselves are declared in pyproject.toml.
"""

from __future__ import annotations

from pathlib import Path

import pytest

FIXTURE_MARKERS = {
    "broker": "broker",
    "tls_broker": "broker",
    "secured": "broker",
    "subscriber": "broker",
    "anvil_node": "chain",
    "w3": "chain",
    "chain": "chain",
    "anvil_chain": "chain",
    "pg_admin": "postgres",
    "browser": "browser",
    "page": "browser",
    "require_chromium": "browser",
    "stack": "e2e",  # tests/api/test_dashboard.py: provisioning, Mosquitto, gateway, attestor, api
    "pipeline": "e2e",  # tests/auditor: devices, Mosquitto, gateway and attestor processes on anvil
}

DATABASE_PARAMETERS = ("db_url", "dataset")
"""Fixtures parametrised over ``sqlite`` and ``postgresql``: only the PostgreSQL half is marked."""

MODULE_MARKERS: dict[str, set[str]] = {
    # e2e: the whole stack, or assetproof's services and commands run as child processes (with
    # their start-up, kill -9 and restart waits): most of the suite's time, little of its edit loop
    "demo": {"e2e", "broker", "chain"},  # assetproof demo, end to end
    "demo/test_first_minute.py": {"browser"},  # ... watched in Chromium
    "deploy/test_compose.py": {"e2e"},  # the compose stack's commands, run as processes
    "test_ingest_pipeline.py": {"e2e", "broker"},  # simulate -> Mosquitto -> gateway -> database
    "test_readme.py": {"e2e", "broker", "chain"},  # the README's demo command
    "test_any_hour.py": {"e2e"},  # re-runs the clock-sensitive modules in child pytest processes
    "test_rogue_subscriber.py": {"e2e", "broker"},  # gateway processes against rogue logins
    "gateway/test_service.py": {"e2e"},  # gateway workers killed, brokers restarted
    "gateway/test_amqtt.py": {"e2e", "broker"},  # a gateway process across amqtt restarts
    "gateway/test_chained_e2e.py": {"e2e", "broker"},
    "gateway/test_faults_e2e.py": {"e2e", "broker"},
    "gateway/test_tls.py": {"e2e"},  # a gateway process over TLS
    "attestor/test_service_process.py": {"e2e", "chain"},  # attestor processes, chain outage, failover
    "api/test_service.py": {"e2e"},  # `assetproof api` over HTTP
    "auditor/test_chained.py": {"e2e"},  # `assetproof audit` runs
    "cli/test_devices_broker.py": {"e2e", "broker"},  # the CLI, as a process, against a broker
    "cli/test_devices_on_chain.py": {"e2e", "chain"},  # ... against anvil
    "cli/test_devices_resync.py": {"e2e", "chain"},
    "cli/test_verify_offline.py": {"e2e"},  # `assetproof verify` as a process
    "chain/test_node_and_artifacts.py": {"e2e", "chain"},  # anvil and the compile check as processes
    # brokers started inside the test body
    "cli/test_healthcheck.py": {"broker"},
    "device_sim/test_broker_tls.py": {"broker"},
    "device_sim/test_fleet.py": {"broker"},
    "device_sim/test_publisher.py": {"broker"},
    # a browser launched inside the test body
    "api/test_csp_browser.py": {"browser"},
    "api/test_docs_offline.py": {"browser"},
}

TEST_MARKERS: dict[str, set[str]] = {
    # single tests that wait on real time rather than check logic: broker restarts and outages,
    # a long run of anchors, a fuzzing sweep over every API operation
    "device_sim/test_publisher.py::test_shared_subscription_survives_a_broker_restart": {"e2e"},
    "device_sim/test_publisher.py::test_holds_readings_while_no_gateway_is_subscribed": {"e2e"},
    "device_sim/test_publisher.py::test_store_and_forward_across_a_broker_outage": {"e2e"},
    "chain/test_anchor_registry.py::test_a_long_run_of_checkpoints_verifies_on_chain": {"e2e"},
    "api/test_schemathesis.py::test_every_operation_conforms": {"e2e"},
    # the README's CLI tour, command by command: anvil, Mosquitto and every service as processes
    "test_readme_tour.py::test_following_the_readme_tour_ends_valid_and_passed": {"e2e", "broker", "chain"},
}
"""Keyed by module and test name, without parameters."""

TESTS = Path(__file__).resolve().parent.parent


def markers_for(item: pytest.Item) -> set[str]:
    found = {FIXTURE_MARKERS[name] for name in getattr(item, "fixturenames", ()) if name in FIXTURE_MARKERS}
    callspec = getattr(item, "callspec", None)
    if callspec is not None and any(callspec.params.get(name) == "postgresql" for name in DATABASE_PARAMETERS):
        found.add("postgres")
    where = item.path.resolve().relative_to(TESTS).as_posix()
    for prefix, names in MODULE_MARKERS.items():
        if where == prefix or where.startswith(prefix + "/"):
            found |= names
    found |= TEST_MARKERS.get(f"{where}::{getattr(item, 'originalname', item.name)}", set())
    return found


def apply(items: list[pytest.Item]) -> None:
    for item in items:
        for name in sorted(markers_for(item)):
            item.add_marker(name)
