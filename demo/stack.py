"""The whole pipeline on one machine, for ``assetproof demo``: a broker, a chain, the contracts,
a provisioned fleet, the gateway, the attestor, the API with the dashboard and the simulator.

The broker and anvil are child processes; the gateway, attestor, API and simulator run as threads
of this process (so the in-process eth-tester chain, the fallback when anvil is missing, serves
them all). Everything lives under ``home`` (``var/demo`` by default), recreated on every run.

The broker is Mosquitto (MQTT v5) when it is installed, otherwise the embedded amqtt broker
(:mod:`devstack.amqtt_broker`), which speaks MQTT 3.1.1 only: the gateway and the fleet then
connect with 3.1.1 (one gateway worker, a plain persistent subscription). Both brokers enforce
the provisioned device passwords and per-device topic ACL.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Callable
from typing import Any, Literal

from eth_account import Account
from sqlalchemy import Engine, select

from attestor.epochs import EpochPolicy
from attestor.service import Attestor
from chain.deployment import write_deployment
from chain.devchain import dev_fund, eth_tester_web3
from chain.types import Roles
from chain.writer import ChainClient
from config import ANVIL_DEV_KEY
from config.clock import wall_ms
from config.mqtt import MqttVersion
from demo.options import ASSETS, DemoError, DemoOptions, replay_start_ms, split_devices
from demo.snapshot import Snapshot, Summary, take_snapshot
from demo.tokens import DemoTokens
from demo.workers import Worker
from device_sim.fleet import FleetDevice, FleetRunner, SimClock
from device_sim.keystore import Keystore
from device_sim.outbox import Outbox
from device_sim.publisher import Publisher
from devstack.amqtt_broker import AmqttBroker, amqtt_available
from devstack.anvil import AnvilNode, find_anvil, start_anvil
from devstack.broker_auth import GATEWAY_USER
from devstack.broker_tls import BrokerTLSDir, device_files
from devstack.fleet import broker_files, provision_fleet
from devstack.mosquitto import Mosquitto, find_mosquitto
from devstack.role_keys import role_keys
from gateway.service import Gateway, GatewayConfig
from gateway.tariff import load_tariff
from store.db import make_engine, migrate
from store.status import EpochStatus
from store.tables import EPOCH


class DemoStack:
    def __init__(self, options: DemoOptions, *, say: Callable[[str], None] = print) -> None:
        self.options = options
        self.say = say
        self.home = options.home
        self.started = time.monotonic()
        self.anvil: AnvilNode | None = None
        self.broker: Mosquitto | AmqttBroker | None = None
        self.mqtt_protocol = MqttVersion.V5
        self.publisher: Publisher | None = None
        self.threads: dict[str, Worker] = {}
        self.chain_label = ""
        self.broker_label = ""
        self.mqtt_tls: BrokerTLSDir | None = None
        self.dashboard_url = ""
        self.faults = 0
        self._api_server: Any = None
        self._engine: Engine | None = None
        self.tokens: DemoTokens | None = None

    @property
    def db_url(self) -> str:
        return f"sqlite:///{self.home / 'assetproof.db'}"

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = make_engine(self.db_url, writer=False)
        return self._engine

    # --- start ------------------------------------------------------------------------------

    def _choose_broker(self) -> tuple[Literal["mosquitto", "amqtt"], str]:
        """Which broker runs, and why (for the label)."""
        choice = self.options.broker
        have_mosquitto = find_mosquitto() is not None
        if choice == "mosquitto" or (choice == "auto" and have_mosquitto):
            if not have_mosquitto:
                raise DemoError(
                    "Mosquitto is not installed (Debian: apt-get install mosquitto; scripts/services does it)"
                )
            return "mosquitto", ""
        if not amqtt_available():
            raise DemoError(
                "no MQTT broker: Mosquitto is not installed (Debian: apt-get install mosquitto)"
                " and neither is the embedded amqtt broker (pip install amqtt; scripts/bootstrap does it)"
            )
        return "amqtt", "Mosquitto not installed" if choice == "auto" else "chosen over Mosquitto"

    def start(self) -> None:
        broker_kind, why = self._choose_broker()
        if self.home.exists():
            shutil.rmtree(self.home)
        self.home.mkdir(parents=True)
        self.started = time.monotonic()

        w3 = self._start_chain()
        # One key per role, as a real deployment has: the operator (this demo's gateway and
        # attestor) can only anchor; devices are the registrar's word, prices the pricing
        # authority's, and only the governor, after the on-chain delay, replaces any of them.
        keys = role_keys(self.home / "role-keys.json")
        for key in keys.values():
            dev_fund(w3, Account.from_key(key).address)
        deployer = ChainClient(w3, account=ANVIL_DEV_KEY)
        deployment = deployer.deploy(
            roles=Roles(**{role: Account.from_key(key).address for role, key in keys.items()}),
        )
        write_deployment(self.home / "deployment.json", deployment)
        ChainClient(w3, account=keys["pricing_authority"], deployment=deployment).publish_tariff(
            load_tariff(), effective_from=0
        )
        registrar = ChainClient(w3, account=keys["registrar"], deployment=deployment)
        chain = ChainClient(w3, account=keys["attestor"], deployment=deployment)
        self.say(
            f"contracts deployed: AnchorRegistry {deployment.anchor_registry.address}; roles: operator (attestor),"
            " registrar, pricing authority and governor each with its own key"
        )

        writer = make_engine(self.db_url)
        migrate(writer)
        for (asset, kind, alg), count in zip(ASSETS, split_devices(self.options.devices), strict=True):
            provision_fleet(
                engine=writer,
                keystore=self.home / "keys",
                broker_auth=self.home / "broker-auth",
                chain=registrar,
                kind=kind,
                count=count,
                asset=asset,
                alg=alg,
                seed=self.options.seed,
            )
        writer.dispose()
        self.say(
            f"provisioned {self.options.devices} devices in {len(ASSETS)} assets (keys on chain, by the registrar)"
        )

        dynsec, gateway_file = broker_files(self.home / "broker-auth")
        if broker_kind == "mosquitto":
            # mqtts: devices and the gateway connect to the TLS listener with the provisioned
            # certificates and verify the broker's (issued for localhost).
            tls_dir = BrokerTLSDir(self.home / "broker-auth" / "tls")
            self.broker = Mosquitto(self.home / "broker", dynsec_file=dynsec, tls=tls_dir)
            self.broker.start()
            self.mqtt_tls = tls_dir
            self.broker_label = f"Mosquitto, mqtts://localhost:{self.broker.tls_port}"
        else:
            self.broker = AmqttBroker(self.home / "broker", dynsec_file=dynsec)
            self.broker.start()
            self.mqtt_protocol = MqttVersion.V3_1_1
            # amqtt's TLS would need its own listener setup: the fallback stays plaintext on loopback.
            self.broker_label = f"embedded amqtt on 127.0.0.1:{self.broker.port} (MQTT 3.1.1, plaintext; {why})"
        self.say(f"broker: {self.broker_label}")
        login = json.loads(gateway_file.read_text())
        gateway = Gateway(
            GatewayConfig(
                database_url=self.db_url,
                tariff=load_tariff(),
                broker_host=self._mqtt_host,
                broker_port=self._mqtt_port,
                username=login["username"],
                password=login["password"],
                client_id="demo-gateway-1",
                protocol=self.mqtt_protocol,
                tls=None if self.mqtt_tls is None else self.mqtt_tls.client(GATEWAY_USER),
            )
        )
        self._spawn("gateway", gateway.run)
        if not gateway.wait_subscribed(15):
            raise DemoError("the gateway did not subscribe to the broker within 15 s")

        attestor = Attestor(
            make_engine(self.db_url),
            chain,
            policy=EpochPolicy(window_ms=int(self.options.epoch_seconds * 1000), max_leaves=10_000),
        )
        self._spawn("attestor", attestor.run)
        self._start_tokens(w3, deployment)
        self._start_api()
        self._start_fleet()
        self.say(f"dashboard: {self.dashboard_url}")

    @property
    def _mqtt_host(self) -> str:
        return "localhost" if self.mqtt_tls is not None else "127.0.0.1"  # the name the certificate carries

    @property
    def _mqtt_port(self) -> int:
        assert self.broker is not None
        return self.broker.tls_port if isinstance(self.broker, Mosquitto) and self.mqtt_tls else self.broker.port

    def _start_chain(self) -> Any:
        if find_anvil() is not None:
            self.anvil = start_anvil()
            self.chain_label = f"anvil at {self.anvil.url}"
            return self.anvil.web3()
        w3 = eth_tester_web3()
        dev_fund(w3, ChainClient(w3, account=ANVIL_DEV_KEY).address)
        self.chain_label = "in-process eth-tester (anvil not installed)"
        return w3

    def _start_tokens(self, w3: Any, deployment: Any) -> None:
        # Its own connection to anvil: the worker's calls do not queue behind the attestor's.
        tokens = DemoTokens(
            w3 if self.anvil is None else self.anvil.web3(),
            engine=self.engine,
            deployment_path=self.home / "deployment.json",
            deployment=deployment,
            keys_path=self.home / "token-keys.json",
            assets=[(asset, kind) for asset, kind, _alg in ASSETS],
            currency=load_tariff().currency,
        )
        self.tokens = tokens
        self._spawn("tokens", lambda stop: tokens.run(stop, first_anchor=self._anchored_once))

    def _anchored_once(self) -> bool:
        with self.engine.connect() as conn:
            return (
                conn.execute(select(EPOCH.c.number).where(EPOCH.c.status == EpochStatus.ANCHORED).limit(1)).first()
                is not None
            )

    def _start_api(self) -> None:
        import uvicorn

        from api.app import create_app
        from config import Settings

        # The dashboard checks roots against the chain itself when the chain has an HTTP endpoint.
        app = create_app(
            Settings(
                database_url=self.db_url,
                deployment=self.home / "deployment.json",
                public_rpc_url=None if self.anvil is None else self.anvil.url,
            )
        )
        config = uvicorn.Config(
            app, host=self.options.api_host, port=self.options.api_port, log_level="warning", lifespan="on"
        )
        server = uvicorn.Server(config)
        self._api_server = server
        self._spawn("api", lambda _stop: server.run())
        deadline = time.monotonic() + 15
        while not server.started:
            if time.monotonic() > deadline or self.threads["api"].error is not None:
                raise DemoError(f"the API did not start on {self.options.api_host}:{self.options.api_port}")
            time.sleep(0.05)
        port = server.servers[0].sockets[0].getsockname()[1] if server.servers else self.options.api_port
        self.dashboard_url = f"http://{self.options.api_host}:{port}/"

    def _start_fleet(self) -> None:
        assert self.broker is not None
        keystore = Keystore(self.home / "keys")
        credentials = [keystore.load(i) for i in keystore.ids()]
        devices = [FleetDevice.from_credentials(c) for c in credentials]
        outbox_path = self.home / "outbox.sqlite"
        box = Outbox(outbox_path)
        # Replay the recent past at `accelerate`, catching up with the wall clock (never past it:
        # the gateway refuses readings from its future).
        start_ms = replay_start_ms(now_ms=wall_ms(), accelerate=self.options.accelerate, seconds=self.options.seconds)
        clock = SimClock(start_ms, self.options.accelerate)
        self.publisher = Publisher(
            outbox_path,
            host=self._mqtt_host,
            port=self._mqtt_port,
            tls=None if self.mqtt_tls is None else (lambda device: device_files(keystore, str(device))),
            passwords={c.device_id: c.mqtt_password for c in credentials},
            protocol=self.mqtt_protocol,
        )
        runner = FleetRunner(
            devices,
            box,
            clock=clock,
            seed=self.options.seed,
            publisher=self.publisher,
            fault_rate=self.options.fault_rate,
        )
        self.publisher.start()

        def run(stop: threading.Event) -> None:
            stats = runner.run(stop)
            self.faults = sum(stats.faults.values())

        self._spawn("simulator", run)

    def _spawn(self, name: str, target: Callable[[threading.Event], object]) -> None:
        worker = Worker(name)
        self.threads[name] = worker
        worker.start(target)

    # --- watch ------------------------------------------------------------------------------

    def failed(self) -> str | None:
        for name, worker in self.threads.items():
            if worker.error is not None:
                return f"{name}: {worker.error}"
        return None

    def snapshot(self) -> Snapshot:
        snap = take_snapshot(self.engine, elapsed_s=time.monotonic() - self.started, wall_started_s=self._wall_started)
        if self.tokens is not None:
            snap.tokens = self.tokens.figures()
        return snap

    @property
    def _wall_started(self) -> float:
        return time.time() - (time.monotonic() - self.started)

    @staticmethod
    def _settled(snap: Snapshot) -> int:
        """Signed readings the store accounts for: accepted, or rejected for content but chained."""
        return snap.accepted + snap.chained

    def signed(self) -> int:
        return sum(state.seq for state in Outbox(self.home / "outbox.sqlite").device_states().values())

    # --- stop -------------------------------------------------------------------------------

    def finish(self, *, timeout_s: float = 60.0) -> Summary:
        """Stop the fleet, let everything it signed be stored and anchored, then stop the rest."""
        self._halt("simulator")
        refused = 0
        if self.publisher is not None:
            self.publisher.wait_until_drained(timeout_s)
            refused = self.publisher.rejected
        signed = self.signed()
        deadline = time.monotonic() + timeout_s
        # Every signed reading ends accepted or quarantined chained (the fleet's chained faults).
        while time.monotonic() < deadline and self._settled(self.snapshot()) < signed and not self.failed():
            time.sleep(0.2)
        self._halt("gateway")
        deadline = time.monotonic() + max(timeout_s, self.options.epoch_seconds * 4)
        while time.monotonic() < deadline and self.snapshot().unanchored_readings and not self.failed():
            time.sleep(0.2)
        self._drain_tokens(deadline=time.monotonic() + timeout_s)
        snap = self.snapshot()
        summary = Summary(
            devices=self.options.devices,
            signed=signed,
            accepted=snap.accepted,
            quarantined=snap.quarantined,
            faults_injected=self.faults,
            lost=max(0, signed - self._settled(snap)),
            epochs_anchored=snap.epochs_anchored,
            epochs_not_anchored=snap.epochs_closed - snap.epochs_anchored,
            unanchored_readings=snap.unanchored_readings,
            gas_total=snap.gas_total,
            first_anchor_s=None if snap.first_anchor_s is None else round(snap.first_anchor_s, 1),
            seconds=round(snap.elapsed_s, 1),
            chain=self.chain_label,
            broker=self.broker_label,
            dashboard=self.dashboard_url,
            chained=snap.chained,
            coverage=snap.coverage,
            refused_by_broker=refused,
            tokens={asset: figures.to_json() for asset, figures in snap.tokens.items()},
            epochs_not_distributed=self._undistributed(),
        )
        (self.home / "summary.json").write_text(json.dumps(summary.to_json(), indent=1) + "\n")
        return summary

    def _last_anchored(self) -> int:
        with self.engine.connect() as conn:
            last = conn.execute(
                select(EPOCH.c.number)
                .where(EPOCH.c.status == EpochStatus.ANCHORED)
                .order_by(EPOCH.c.number.desc())
                .limit(1)
            ).first()
        return -1 if last is None else int(last.number)

    def _drain_tokens(self, *, deadline: float) -> None:
        """Let the token worker set up (if the run anchored anything) and fund every anchored
        epoch, then stop it."""
        tokens = self.tokens
        if tokens is not None:
            last = self._last_anchored()
            while time.monotonic() < deadline and last >= 0 and tokens.funded_through < last and not self.failed():
                time.sleep(0.2)
        self._halt("tokens")

    def _undistributed(self) -> int:
        """Anchored epochs the tokens were not funded for (0 when every one was)."""
        if self.tokens is None:
            return 0
        return max(0, self._last_anchored() - self.tokens.funded_through)

    def _halt(self, name: str) -> None:
        worker = self.threads.get(name)
        if worker is not None:
            worker.halt()

    def close(self) -> None:
        """Stop everything still running (idempotent; also after a failed start)."""
        self._halt("simulator")
        if self.publisher is not None:
            self.publisher.stop()
            self.publisher = None
        self._halt("gateway")
        self._halt("tokens")
        self._halt("attestor")
        if self._api_server is not None:
            self._api_server.should_exit = True
        self._halt("api")
        if self.broker is not None:
            self.broker.stop()
            self.broker = None
        if self.anvil is not None:
            self.anvil.stop()
            self.anvil = None
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None
