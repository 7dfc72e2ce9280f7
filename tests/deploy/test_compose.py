"""docker-compose.yml: valid against the Compose specification, wired consistently, and run
natively with the same commands, settings, config files and healthchecks (no container engine
runs on these machines): real PostgreSQL, anvil and Mosquitto, the one-shot provisioner, two
gateway processes on one shared subscription, the attestor, the API and the simulator."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from eth_account import Account
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine

from config import SettingsError, load_settings
from devstack.anvil import start_anvil
from devstack.mosquitto import find_dynsec_plugin, find_mosquitto, free_port
from tests.support.postgres import drop_pg_database, new_pg_database

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / "deploy" / "compose.env.example"
BIN = Path(sys.executable).parent
TOKEN = "compose-smoke-admin-token-0123456789"
CHAIN_KEY = "0x" + "c1" * 32
ATTESTOR_KEY = "0x" + "a7" * 32
ROLE_KEYS = {
    "ASSETPROOF_REGISTRAR_KEY": "0x" + "b2" * 32,
    "ASSETPROOF_PRICING_KEY": "0x" + "d3" * 32,
    "ASSETPROOF_GOVERNOR_KEY": "0x" + "e4" * 32,
}
_VARIABLE = re.compile(r"\$\{(\w+)(?::([?-])([^}]*))?\}|\$\$")


class MissingVariableError(Exception):
    pass


def interpolate(source: str, env: dict[str, str]) -> str:
    """Compose's variable substitution for the forms this file uses: ``${X}``, ``${X:-default}``,
    ``${X:?error}`` (unset or empty is an error) and ``$$``."""

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match.groups()
        value = env.get(name, "")
        if op == "?" and not value:
            raise MissingVariableError(f"{name}: {arg}")
        if op == "-" and not value:
            return arg
        return value

    return _VARIABLE.sub(one, source)


def example_env(**extra: str) -> dict[str, str]:
    env = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key] = value
    env["ASSETPROOF_ADMIN_TOKEN"] = TOKEN
    # Keys of the deployment's own (the example leaves them blank: production refuses anvil's).
    env["ASSETPROOF_CHAIN_KEY"] = CHAIN_KEY
    env["ASSETPROOF_ATTESTOR_KEY"] = ATTESTOR_KEY
    env.update(ROLE_KEYS)
    env.update(extra)
    return env


def load_compose(env: dict[str, str]) -> dict[str, Any]:
    """Parsed first, then interpolated, as Compose does (a key like 0xac09... stays a string)."""

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            return {key: walk(value) for key, value in node.items()}
        if isinstance(node, list):
            return [walk(value) for value in node]
        return interpolate(node, env) if isinstance(node, str) else node

    data = walk(yaml.safe_load(COMPOSE.read_text()))
    assert isinstance(data, dict)
    return data


# --- the file --------------------------------------------------------------------------------


def _check_jsonschema(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_valid_against_the_compose_specification() -> None:
    result = _check_jsonschema(COMPOSE)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("good", "bad"),
    [
        ("condition: service_completed_successfully", "condition: service_done"),
        ("      replicas: 2", "      replica: 2"),
        ("      interval: 5s\n      timeout: 3s", "      interval: 5s\n      timeout: [3]"),
    ],
)
def test_the_schema_check_catches_mistakes(good: str, bad: str, tmp_path: Path) -> None:
    source = COMPOSE.read_text()
    assert good in source
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(source.replace(good, bad, 1))
    assert _check_jsonschema(broken).returncode != 0


def test_secrets_have_no_defaults() -> None:
    for name in ("ASSETPROOF_ADMIN_TOKEN", "ASSETPROOF_ATTESTOR_KEY", *ROLE_KEYS, "POSTGRES_PASSWORD"):
        env = example_env()
        env.pop(name)
        with pytest.raises(MissingVariableError, match=name):
            load_compose(env)


def test_wiring() -> None:
    compose = load_compose(example_env())
    services = compose["services"]
    assert set(services) == {
        "postgres",
        "anvil",
        "provision",
        "mosquitto",
        "gateway",
        "attestor",
        "api",
        "simulator",
    }
    assert services["gateway"]["deploy"]["replicas"] == 2
    # anvil is published on the host's loopback only (never 0.0.0.0); services use its name.
    assert services["anvil"]["ports"] == ["127.0.0.1:8545:8545"]
    assert all(not str(p).startswith(("0.0.0.0:", "8545")) for p in services["anvil"]["ports"])
    assert services["gateway"]["environment"]["ASSETPROOF_RPC"] == "http://anvil:8545"
    for name, service in services.items():
        for dependency, condition in service.get("depends_on", {}).items():
            assert dependency in services, (name, dependency)
            target = services[dependency]
            if condition["condition"] == "service_healthy":
                assert "healthcheck" in target, f"{name} waits for {dependency}'s health, which has no check"
            else:
                assert condition["condition"] == "service_completed_successfully"
                assert target.get("restart") == "no", f"{dependency} is one-shot"
        if name not in ("provision", "simulator"):
            assert "healthcheck" in service, name
        if service.get("image") == "assetproof:latest":
            env = service["environment"]
            assert env["ASSETPROOF_MODE"] == "production", name
            # Every ASSETPROOF_ variable the file sets is a setting the services know, with a valid value.
            load_settings(environ={k: str(v) for k, v in env.items()})
    # The mosquitto healthcheck targets the config's anonymous, deny-all listener.
    conf = (ROOT / "deploy" / "mosquitto.conf").read_text()
    assert "listener 1880 127.0.0.1" in conf
    assert "1880" in services["mosquitto"]["healthcheck"]["test"]
    # The broker's access config: dynamic security, on a volume the broker may write (it saves
    # $CONTROL changes) and that holds no device keys.
    assert "plugin /usr/lib/mosquitto_dynamic_security.so" in conf
    assert "plugin_opt_config_file /state/broker/dynsec.json" in conf
    assert "password_file" not in conf
    assert "broker-auth:/state/broker" in services["mosquitto"]["volumes"]
    assert not any(v.startswith("state:") for v in services["mosquitto"]["volumes"])
    assert "broker-auth:/state/broker" in services["gateway"]["volumes"]
    with pytest.raises(SettingsError, match="ASSETPROOF_ATTESTOR_KEY is required"):
        load_settings(environ={k: str(v) for k, v in services["gateway"]["environment"].items()}).require_attestor_key()


def test_dockerfile_installs_what_compose_runs() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["assetproof"]' in dockerfile
    assert "-c constraints.txt" in dockerfile
    assert "--uid 1883" in dockerfile  # the eclipse-mosquitto image's user reads the provisioner's files
    compose = load_compose(example_env())
    assert compose["services"]["provision"]["entrypoint"] == ["/app/deploy/provision"]
    assert os.access(ROOT / "deploy" / "provision", os.X_OK)
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv", "var", ".env"} <= set(ignored)


# --- the same commands, natively --------------------------------------------------------------


class Stack:
    """The compose services as local processes; logs in ``directory``."""

    def __init__(self, directory: Path, compose: dict[str, Any], rewrite: dict[str, str]) -> None:
        self.directory = directory
        self.compose = compose
        self.rewrite = rewrite
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def env(self, service: str, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ASSETPROOF_")}
        env["PATH"] = f"{BIN}:{env.get('PATH', '')}"
        env["APP"] = str(ROOT)
        for key, value in self.compose["services"][service].get("environment", {}).items():
            value = str(value)
            for old, new in self.rewrite.items():
                value = value.replace(old, new)
            env[key] = value
        env.update(extra)
        return env

    def argv(self, service: str) -> list[str]:
        spec = self.compose["services"][service]
        entrypoint = spec.get("entrypoint", ["assetproof"])
        return [*entrypoint, *spec.get("command", [])]

    def run(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        argv = [str(ROOT / a[len("/app/") :]) if a.startswith("/app/") else a for a in argv]
        log = (self.directory / f"{name}.log").open("wb")
        process = subprocess.Popen(argv, env=env, cwd=self.directory, stdout=log, stderr=subprocess.STDOUT)
        self.processes[name] = process
        return process

    def log(self, name: str) -> str:
        return (self.directory / f"{name}.log").read_text(errors="replace")

    def wait_healthy(self, name: str, test: list[str], env: dict[str, str], timeout_s: float = 60) -> None:
        """Run the service's compose healthcheck command until it passes."""
        assert test[0] == "CMD"
        deadline = time.monotonic() + timeout_s
        while True:
            process = self.processes.get(name)
            if process is not None and process.poll() is not None:
                pytest.fail(f"{name} exited with {process.returncode}:\n{self.log(name)[-3000:]}")
            check = subprocess.run(test[1:], env=env, capture_output=True, timeout=30, check=False)
            if check.returncode == 0:
                return
            if time.monotonic() > deadline:
                pytest.fail(f"{name} never became healthy: {check.stderr.decode()[-500:]}\n{self.log(name)[-3000:]}")
            time.sleep(0.5)

    def stop_all(self) -> dict[str, int]:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        codes = {}
        for name, process in self.processes.items():
            try:
                codes[name] = process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                codes[name] = process.wait()
        return codes


@pytest.fixture
def pg_url(pg_admin: Engine) -> Iterator[str]:
    url = new_pg_database(pg_admin)
    yield url
    drop_pg_database(pg_admin, url)


def _counts(engine: Engine) -> tuple[int, int, int, int]:
    with engine.connect() as conn:
        readings = conn.execute(text("select count(*) from reading")).scalar_one()
        unlogged = conn.execute(text("select count(*) from reading where log_index is null")).scalar_one()
        epochs = conn.execute(text("select count(*) from epoch")).scalar_one()
        unanchored = conn.execute(text("select count(*) from epoch where status <> 'anchored'")).scalar_one()
    return readings, unlogged, epochs, unanchored


@pytest.mark.timeout(300)
def test_compose_services_run_natively(tmp_path: Path, pg_url: str) -> None:
    if find_mosquitto() is None or find_dynsec_plugin() is None or shutil.which("mosquitto_pub") is None:
        pytest.fail(
            "Mosquitto, its dynamic-security plugin and mosquitto_pub are required (scripts/services installs them)",
            pytrace=False,
        )
    compose = load_compose(example_env(EPOCH_SECONDS="3", FLEET_SIZE="3"))
    state = tmp_path / "state"
    state.mkdir()
    anvil = start_anvil()
    mqtt_port, health_port = free_port(), free_port()
    api_port = free_port()
    pg = pg_url.replace("postgresql+psycopg://", "postgresql://")  # as a user would write it
    stack = Stack(
        tmp_path,
        compose,
        {
            "postgresql://assetproof:change-this-database-password@postgres:5432/assetproof": pg,
            # mqtts: the broker's certificate names localhost (and mosquitto, not resolvable here).
            "mosquitto:8883": f"localhost:{mqtt_port}",
            "http://anvil:8545": anvil.url,
            "/state": str(state),
        },
    )
    try:
        # The one-shot provisioner, twice: the second run finds everything done.
        provision = stack.env("provision")
        for attempt in range(2):
            done = stack.run(f"provision-{attempt}", stack.argv("provision"), provision)
            assert done.wait(timeout=120) == 0, stack.log(f"provision-{attempt}")
        assert stack.log("provision-1").count("evc-") == 3  # the same 3 chargers, not 6
        # The deployment's own keys (not anvil's) were given gas money on the local chain.
        assert stack.log("provision-0").count("on the local anvil chain") == 5  # chain, attestor and three roles
        # Each role is held by its own key: the operator's attestor can only anchor.
        roles = json.loads((state / "deployment.json").read_text())["roles"]
        assert roles == {
            "attestor": Account.from_key(ATTESTOR_KEY).address,
            "registrar": Account.from_key(ROLE_KEYS["ASSETPROOF_REGISTRAR_KEY"]).address,
            "pricingAuthority": Account.from_key(ROLE_KEYS["ASSETPROOF_PRICING_KEY"]).address,
            "governor": Account.from_key(ROLE_KEYS["ASSETPROOF_GOVERNOR_KEY"]).address,
        }
        assert "published tariff" in stack.log("provision-0")
        stack.processes.clear()

        # Mosquitto with the compose file's config, its paths and ports made local.
        conf = (ROOT / "deploy" / "mosquitto.conf").read_text()
        conf = conf.replace("listener 8883\n", f"listener {mqtt_port} 127.0.0.1\n")
        conf = conf.replace("listener 1880 127.0.0.1", f"listener {health_port} 127.0.0.1")
        conf = conf.replace("/usr/lib/mosquitto_dynamic_security.so", str(find_dynsec_plugin()))
        conf = conf.replace("/state/", f"{state}/").replace("/mosquitto/config/", f"{ROOT}/deploy/")
        (tmp_path / "mosquitto").mkdir()
        conf = conf.replace("/mosquitto/data/", f"{tmp_path}/mosquitto/").replace("log_dest stdout", "log_dest stderr")
        conf_path = tmp_path / "mosquitto.conf"
        conf_path.write_text(f"user {os.environ.get('USER') or 'root'}\n" + conf)
        stack.run("mosquitto", [str(find_mosquitto()), "-c", str(conf_path)], os.environ.copy())
        mosquitto_check = [
            str(a).replace("1880", str(health_port)) for a in compose["services"]["mosquitto"]["healthcheck"]["test"]
        ]
        stack.wait_healthy("mosquitto", mosquitto_check, os.environ.copy())

        # Two gateway replicas: each its own client id (compose: the container's hostname).
        gateways = []
        for replica in (1, 2):
            env = stack.env(
                "gateway",
                ASSETPROOF_GATEWAY_CLIENT_ID=f"gateway-{replica}",
                ASSETPROOF_GATEWAY_METRICS_PORT=str(free_port()),
            )
            stack.run(f"gateway-{replica}", stack.argv("gateway"), env)
            gateways.append(env)
        for replica, env in enumerate(gateways, start=1):
            stack.wait_healthy(f"gateway-{replica}", compose["services"]["gateway"]["healthcheck"]["test"], env)

        attestor = stack.env("attestor", ASSETPROOF_ATTESTOR_METRICS_PORT=str(free_port()))
        stack.run("attestor", stack.argv("attestor"), attestor)
        stack.wait_healthy("attestor", compose["services"]["attestor"]["healthcheck"]["test"], attestor)
        api = stack.env("api", ASSETPROOF_API_PORT=str(api_port))
        stack.run("api", stack.argv("api"), api)
        stack.wait_healthy("api", compose["services"]["api"]["healthcheck"]["test"], api)

        # The simulator, for a while (compose runs it for ever).
        simulator = stack.run("simulator", [*stack.argv("simulator"), "--seconds", "12"], stack.env("simulator"))
        assert simulator.wait(timeout=90) == 0, stack.log("simulator")
        summary = re.search(
            r"(\d+) readings signed.*?(\d+) published, (\d+) refused.*?(\d+) still queued", stack.log("simulator")
        )
        assert summary is not None, stack.log("simulator")
        signed, _published, refused, queued = map(int, summary.groups())
        assert signed > 0
        assert (refused, queued) == (0, 0)

        engine = create_engine(pg_url)
        deadline = time.monotonic() + 60
        while (counts := _counts(engine)) != (signed, 0, counts[2], 0) or counts[2] == 0:
            if time.monotonic() > deadline:
                pytest.fail(f"readings/unlogged/epochs/unanchored = {counts}, signed {signed}")
            time.sleep(0.5)
        engine.dispose()

        # Both replicas took a share of the work.
        for replica, env in enumerate(gateways, start=1):
            port = env["ASSETPROOF_GATEWAY_METRICS_PORT"]
            metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
            stored = re.search(r'assetproof_gateway_messages_total\{outcome="accepted"\} ([\d.e+]+)', metrics)
            assert stored is not None, f"gateway-{replica} stored nothing"
            assert float(stored.group(1)) > 0, f"gateway-{replica} stored nothing"
        # The API serves the anchored epochs.
        epochs = httpx.get(f"http://127.0.0.1:{api_port}/v1/epochs", timeout=10).json()
        assert epochs["items"]
        assert all(e["status"] == "anchored" for e in epochs["items"])
    finally:
        codes = stack.stop_all()
        anvil.stop()
    # uvicorn re-raises SIGTERM once its shutdown is complete, so the API "dies" of it after a clean stop.
    assert "Application shutdown complete" in stack.log("api")
    codes["api"] = 0 if codes["api"] == -signal.SIGTERM else codes["api"]
    assert all(code == 0 for code in codes.values()), {n: (c, stack.log(n)[-800:]) for n, c in codes.items() if c}
