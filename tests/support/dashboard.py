"""A running assetproof for the dashboard's end-to-end test, as an operator runs it: devices
provisioned on a real anvil, Mosquitto with the generated dynamic-security config, a gateway
process, ``assetproof simulate``, an attestor process and ``assetproof api`` (uvicorn) serving
the dashboard; and Debian's Chromium driven by Playwright.

Usable outside pytest too (``python -c 'from tests.support.dashboard import ...'``), which is
how the dashboard is looked at while it is being written.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount
from sqlalchemy import func, select

from chain.deployment import Deployment, write_deployment
from chain.writer import ChainClient
from device_sim.outbox import Outbox
from devstack.anvil import AnvilNode
from devstack.mosquitto import Mosquitto, free_port
from gateway.tariff import load_tariff
from protocol.cashflow import HOUR_MS
from store.db import make_engine
from store.tables import EPOCH, QUARANTINE, READING, Reading
from tests.support.chain import funded_account
from tests.support.processes import REPO, count_rows, start_gateway, stop_process, wait_for, wait_subscribed

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)
CHROMIUM_MISSING = (
    f"Chromium is not installed at {CHROMIUM}: run scripts/services (it installs Debian's chromium package),"
    " or `apt-get install -y --no-install-recommends chromium`. Playwright drives that binary; its own browser"
    " download (`playwright install`) cannot work on these machines."
)
ARTIFACTS = REPO / "test-artifacts" / "dashboard"
DAY_MS = 24 * HOUR_MS
SUNNY_UTC_HOUR = 2
"""10:00 in Hong Kong: the simulated fleet starts then, so the rooftops produce (and each asset's
net varies from hour to hour) whatever the hour the tests run at."""
FLEET = (
    ("solar", "hk-rooftops", "ed25519", 3),
    ("charger", "kowloon-hub", "es256", 2),
    ("miner", "hydro-pod", "ed25519", 2),
)


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "cli", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )
    assert out.returncode == 0, f"assetproof {args[0]} failed:\n{out.stdout[-2000:]}{out.stderr[-2000:]}"
    return out.stdout


def http_json(url: str, *, timeout: float = 5) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


def _chained(engine: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).where(QUARANTINE.c.chained)).scalar_one())


def _logged(args: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "cli", *args],
        cwd=REPO,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
    )


@dataclass
class Stack:
    home: Path
    node: AnvilNode
    operator: LocalAccount
    deployment: Deployment
    deployment_path: Path
    db_url: str
    keys: Path
    auth: Path
    broker: Mosquitto | None = None
    api_url: str = ""
    """The API with the dashboard, once started."""
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def database(self) -> Path:
        return Path(self.db_url.removeprefix("sqlite:///"))

    @property
    def operator_key(self) -> str:
        return "0x" + bytes(self.operator.key).hex()

    def log(self, name: str) -> Path:
        return self.home / f"{name}.log"

    def log_tail(self, name: str) -> str:
        path = self.log(name)
        return path.read_text(errors="replace")[-3000:] if path.exists() else "(no log)"

    def provision(self) -> None:
        common = [
            "--database",
            self.db_url,
            "--keystore",
            str(self.keys),
            "--broker-auth",
            str(self.auth),
            "--deployment",
            str(self.deployment_path),
            "--rpc",
            self.node.url,
            "--key",
            self.operator_key,
        ]
        for kind, asset, alg, count in FLEET:
            run_cli(
                "devices", "provision", "--kind", kind, "--count", str(count), "--asset", asset, "--alg", alg, *common
            )

    def start_ingest(self) -> None:
        """Mosquitto with the provisioned dynamic-security config, and a gateway holding the
        shared subscription (before that the broker delivers to nobody)."""
        self.broker = Mosquitto(self.home / "broker", dynsec_file=self.auth / "dynsec.json")
        self.broker.start()
        login = json.loads((self.auth / "gateway.json").read_text())
        self.processes["gateway"] = start_gateway(
            database_url=self.db_url,
            port=self.broker.port,
            log_path=self.log("gateway"),
            extra=["--username", login["username"], "--password", login["password"]],
        )
        wait_subscribed(self.log("gateway"))

    def simulate(
        self, *, accelerate: float, seconds: float, fault_rate: float = 0.0, start_ms: int | None = None
    ) -> None:
        """Run the fleet and wait until the gateway has stored every reading it signed (faulty
        extra messages go to quarantine). ``start_ms``: the simulated start (default: the
        simulator's, which depends on the wall clock)."""
        assert self.broker is not None
        outbox = self.home / "outbox.sqlite"
        start = [] if start_ms is None else ["--start", iso_utc(start_ms)]
        run_cli(
            "simulate",
            *start,
            "--keystore",
            str(self.keys),
            "--broker",
            f"127.0.0.1:{self.broker.port}",
            "--outbox",
            str(outbox),
            "--accelerate",
            str(accelerate),
            "--seconds",
            str(seconds),
            "--fault-rate",
            str(fault_rate),
        )
        signed = sum(state.seq for state in Outbox(outbox).device_states().values())
        engine = make_engine(self.db_url)
        try:
            # A signed reading is accepted, or chained in quarantine (genuine but rejected for its content).
            wait_for(
                lambda: count_rows(engine, Reading) + _chained(engine) == signed,
                what=f"all {signed} signed readings stored or chained",
            )
        finally:
            engine.dispose()

    def start_attestor(self, *, epoch_seconds: float = 1.0, epoch_leaves: int = 250) -> None:
        self.processes["attestor"] = _logged(
            [
                "attestor",
                "--database",
                self.db_url,
                "--rpc",
                self.node.url,
                "--key",
                self.operator_key,
                "--deployment",
                str(self.deployment_path),
                "--epoch-seconds",
                str(epoch_seconds),
                "--epoch-leaves",
                str(epoch_leaves),
            ],
            self.log("attestor"),
        )

    def start_api(self, name: str, *, public_rpc_url: str | None) -> str:
        """The API under uvicorn on a free port, serving the dashboard; returns its base URL."""
        port = free_port()
        env = {
            "ASSETPROOF_DATABASE_URL": self.db_url,
            "ASSETPROOF_DEPLOYMENT": str(self.deployment_path),
            "ASSETPROOF_PUBLIC_RPC_URL": public_rpc_url or "",
        }
        self.processes[name] = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                "api.app:create_app",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--log-level",
                "warning",
            ],
            cwd=REPO,
            stdout=self.log(name).open("ab"),
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **env},
        )
        url = f"http://127.0.0.1:{port}"

        def answers() -> bool:
            assert self.processes[name].poll() is None, self.log_tail(name)
            try:
                return bool(http_json(url + "/healthz", timeout=1)["status"] == "ok")
            except OSError:
                return False

        wait_for(answers, timeout_s=30, what=f"{name} to answer on {url}")
        return url

    def stop(self) -> None:
        for process in reversed(list(self.processes.values())):
            stop_process(process)
        self.processes.clear()
        if self.broker is not None:
            self.broker.stop()
            self.broker = None


def iso_utc(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"


def sunny_start(*, now_ms: int, span_ms: int) -> int:
    """The latest 10:00 Hong Kong time from which ``span_ms`` of simulated readings end before
    ``now_ms``: within the dashboard's 48-hour range, starting on a whole hour, in daylight."""
    start = now_ms - now_ms % DAY_MS + SUNNY_UTC_HOUR * HOUR_MS
    while start + span_ms > now_ms:
        start -= DAY_MS
    return start


def new_stack(home: Path, node: AnvilNode) -> Stack:
    """Contracts deployed for this stack alone (the anvil may be shared) and the devices
    provisioned on them; nothing running yet."""
    home.mkdir(parents=True, exist_ok=True)
    w3 = node.web3()
    operator = funded_account(w3)
    client = ChainClient(w3, account=operator)
    deployment = client.deploy()
    # The attestor prices epochs with the tariff in force on chain: the gateway's, from the start.
    client.publish_tariff(load_tariff(), effective_from=0)
    deployment_path = home / "deployment.json"
    write_deployment(deployment_path, deployment)
    stack = Stack(
        home=home,
        node=node,
        operator=operator,
        deployment=deployment,
        deployment_path=deployment_path,
        db_url=f"sqlite:///{home / 'assetproof.db'}",
        keys=home / "keys",
        auth=home / "broker-auth",
    )
    stack.provision()
    return stack


def unanchored_readings(db_url: str) -> int:
    """Readings stored but not yet in an anchored epoch."""
    reading, epoch = READING, EPOCH
    anchored = select(epoch.c.number).where(epoch.c.status == "anchored")
    query = (
        select(func.count()).select_from(reading).where(reading.c.epoch.is_(None) | reading.c.epoch.not_in(anchored))
    )
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(query).scalar_one())
    finally:
        engine.dispose()
