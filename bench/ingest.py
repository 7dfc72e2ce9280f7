"""Ingest throughput, loss and latency: simulator → Mosquitto → gateway → database.

    python -m bench.ingest --devices 1000 --seconds 10 --json            # as fast as flow control allows
    python -m bench.ingest --devices 1000 --rate 2500 --seconds 10 --json

One run does two phases over the same pregenerated signed readings (``devices × rate × seconds``
of them, or ``devices × per-device`` without ``--rate``), each against a fresh Mosquitto:

1. *ceiling*: a bare paho subscriber (MQTT v5, QoS 1, automatic acknowledgement) that only
   receives each message and verifies its signature, in its own process;
2. *gateway*: one ``assetproof gateway`` worker process (or ``--workers N``) with a fresh
   database, which decodes, verifies, sequences, stores and acknowledges after commit.

Both phases face the same load publisher process (several multiplexed MQTT connections, QoS 1,
a bounded in-flight window each, optional rate limit). ``lost`` is published minus everything
accounted for (readings stored, quarantined, counted as duplicates, still held), after the
gateway drains. Latency is publish → commit (``reading.stored_ms``) on the same clock.

``--rogue``: the gateway phase's broker enforces the provisioned access rules (device logins, the
gateway login, a load writer: :mod:`bench._ingest_rogue`), and a subscriber on a device login tries
to join the gateways' shared subscription mid-run; ``rogue`` reports its SUBACK codes (135: refused)
and what it received, and ``lost`` must stay 0.

*TLS* (unless ``--skip-tls``): the gateway phase again, same load, fresh database, but publisher
and gateway on the broker's TLS listener (certificates from a throwaway CA, client certificate
required, broker verified by host name). ``tls_throughput_msgs_s``, ``tls_lost`` and
``tls_ratio`` (TLS over plaintext gateway throughput, same run; target >= 0.8) join the output.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench import _ingest_rogue
from bench._ingest_load import Load, generate_load
from config.clock import wall_ms

REPO = Path(__file__).resolve().parent.parent


def _run_module(module: str, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", module, *args], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def _vm_hwm_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def _publish(
    port: int,
    load_file: Path,
    out_file: Path,
    *,
    rate: float | None,
    connections: int,
    login: Any = None,
    tls: Any = None,
) -> dict[str, Any]:
    args = ["--port", str(port), "--load", str(load_file), "--out", str(out_file), "--connections", str(connections)]
    if rate:
        args += ["--rate", str(rate)]
    if login is not None:
        args += ["--username", login.username, "--password", login.password]
    if tls is not None:
        args += ["--tls", str(tls.ca), str(tls.cert), str(tls.key)]
    proc = _run_module("bench._ingest_publisher", *args)
    stdout, stderr = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"publisher failed: {stderr.decode()[-2000:]}")
    result: dict[str, Any] = json.loads(stdout)
    return result


def run_ceiling(load: Load, load_file: Path, work: Path, *, rate: float | None, connections: int) -> dict[str, Any]:
    from devstack.mosquitto import Mosquitto

    with Mosquitto(work / "broker-ceiling") as broker:
        sub = _run_module("bench._ingest_subscriber", "--port", str(broker.port), "--load", str(load_file))
        assert sub.stdout is not None
        ready = sub.stdout.readline()  # "ready" once subscribed
        if not ready:
            raise SystemExit(f"ceiling subscriber failed: {sub.stderr.read().decode()[-2000:] if sub.stderr else ''}")
        published = _publish(broker.port, load_file, work / "pub-ceiling.bin", rate=rate, connections=connections)
        stdout, stderr = sub.communicate(timeout=600)
        if sub.returncode != 0:
            raise SystemExit(f"ceiling subscriber failed: {stderr.decode()[-2000:]}")
    result: dict[str, Any] = json.loads(stdout)
    result["published"] = published["published"]
    return result


def run_gateway(
    load: Load,
    load_file: Path,
    work: Path,
    *,
    rate: float | None,
    connections: int,
    database: str | None,
    workers: int,
    rogue: bool = False,
    tls: bool = False,
) -> dict[str, Any]:
    """Everything published through one broker to the gateway worker(s), stored and accounted.
    ``tls``: publisher and gateways use the broker's TLS listener with provisioned certificates."""
    from sqlalchemy import func, select, text

    from devstack.mosquitto import Mosquitto
    from store.db import make_engine, migrate
    from store.devices import NewDevice, ensure_asset, register_devices
    from store.tables import DeviceState, HeldReading, Quarantine, Reading

    work.mkdir(parents=True, exist_ok=True)
    url = database or f"sqlite:///{work / 'ingest.db'}"
    engine = make_engine(url)
    migrate(engine)
    now = wall_ms()
    for kind, asset in {(d.kind, d.asset) for d in load.devices}:
        ensure_asset(engine, name=asset, kind=kind, now_ms=now)
    for asset in sorted({d.asset for d in load.devices}):
        members = [d for d in load.devices if d.asset == asset]
        register_devices(
            engine,
            asset=asset,
            devices=[
                NewDevice(
                    id=d.id, kind=d.kind, alg=d.alg, public_key=d.public_key, rating=d.rating, window_s=d.window_s
                )
                for d in members
            ],
            now_ms=now,
        )

    secured = _ingest_rogue.write_access(work / "broker-auth", load) if rogue else None
    login = [] if secured is None else ["--username", secured.gateway.username, "--password", secured.gateway.password]
    tls_dir = _tls_material(work / "tls") if tls else None
    with Mosquitto(
        work / "broker-gateway", dynsec_file=None if secured is None else secured.dynsec, tls=tls_dir
    ) as broker:
        address = f"127.0.0.1:{broker.port}"
        publisher_tls = None
        if tls_dir is not None:
            gw_tls = tls_dir.client("bench-gateway")
            publisher_tls = tls_dir.client("bench-publisher")
            address = f"localhost:{broker.tls_port}"
            login += ["--tls-ca", str(gw_tls.ca), "--tls-cert", str(gw_tls.cert), "--tls-key", str(gw_tls.key)]
        logs = [work / f"gateway-{i}.log" for i in range(workers)]
        procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "cli",
                    "gateway",
                    "--database",
                    url,
                    "--broker",
                    address,
                    "--client-id",
                    f"bench-gw-{i}",
                    "--batch-size",
                    "500",
                    *login,
                ],
                cwd=REPO,
                stdout=logs[i].open("wb"),
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
            for i in range(workers)
        ]
        try:
            deadline = time.monotonic() + 60
            while not all("subscribed to $share/" in log.read_text(errors="replace") for log in logs):
                if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                    raise SystemExit("gateway did not start: " + " | ".join(log.read_text()[-1500:] for log in logs))
                time.sleep(0.05)
            hwm = {p.pid: 0.0 for p in procs}
            sampling = threading.Event()

            def sample_rss() -> None:
                while not sampling.wait(0.2):
                    for p in procs:
                        hwm[p.pid] = max(hwm[p.pid], _vm_hwm_mb(p.pid))

            sampler = threading.Thread(target=sample_rss, daemon=True)
            sampler.start()

            def accounted() -> tuple[int, int, int, int]:
                with engine.connect() as conn:
                    return (
                        conn.execute(select(func.count()).select_from(Reading)).scalar_one(),
                        conn.execute(select(func.count()).select_from(Quarantine)).scalar_one(),
                        int(conn.execute(select(func.coalesce(func.sum(DeviceState.duplicates), 0))).scalar_one()),
                        conn.execute(select(func.count()).select_from(HeldReading)).scalar_one(),
                    )

            intruder = None
            if secured is not None:  # joins (tries to) once the first reading is stored
                intruder = _ingest_rogue.Rogue(broker.port, secured.rogue, started=lambda: accounted()[0] > 0)
            published = _publish(
                broker.tls_port if tls_dir is not None else broker.port,
                load_file,
                work / "pub-gateway.bin",
                rate=rate,
                connections=connections,
                login=None if secured is None else secured.writer,
                tls=publisher_tls,
            )

            drain_deadline = time.monotonic() + 300
            while True:
                stored, quarantined, duplicates, held = accounted()
                if stored + quarantined + duplicates >= published["published"] or time.monotonic() > drain_deadline:
                    break
                time.sleep(0.1)
            time.sleep(1.0)
            stored, quarantined, duplicates, held = accounted()
            rogue_result = None if intruder is None else intruder.stop()  # present until the drain ended
            sampling.set()
            for p in procs:
                hwm[p.pid] = max(hwm[p.pid], _vm_hwm_mb(p.pid))
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait(timeout=60)

    publish_ms = pickle.loads((work / "pub-gateway.bin").read_bytes())  # (device, seq) -> publish ms
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT device_id, seq, stored_ms FROM reading")).all()
        duplicates_stored = conn.execute(
            text(
                "SELECT count(*) FROM (SELECT device_id, seq FROM reading"
                " GROUP BY device_id, seq HAVING count(*) > 1) d"
            )
        ).scalar_one()
    engine.dispose()
    latencies = sorted(
        r.stored_ms - publish_ms[(r.device_id, r.seq)] for r in rows if (r.device_id, r.seq) in publish_ms
    )
    first_publish = min(publish_ms.values())
    last_commit = max((r.stored_ms for r in rows), default=first_publish)

    def pct(p: float) -> float:
        return float(latencies[min(len(latencies) - 1, int(p * len(latencies)))]) if latencies else float("nan")

    return {
        "published": published["published"],
        "accepted": stored,
        "quarantined": quarantined,
        "duplicates_counted": duplicates,
        "held": held,
        "duplicates_stored": int(duplicates_stored),
        "lost": published["published"] - (stored + quarantined + duplicates + held),
        "throughput_msgs_s": stored / max(1e-9, (last_commit - first_publish) / 1000),
        "publish_msgs_s": published["msgs_s"],
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "gateway_rss_mb": max(hwm.values()),
        **({} if rogue_result is None else {"rogue": rogue_result}),
    }


def _tls_material(directory: Path) -> Any:
    from devstack.broker_tls import BrokerTLSDir, issue_client, issue_server

    tls = BrokerTLSDir(directory)
    issue_server(tls)
    for login in ("bench-gateway", "bench-publisher"):
        issue_client(tls, common_name=login)
    return tls


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ingest", description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=None, help="readings per second across the fleet")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument(
        "--per-device", type=int, default=None, help="readings per device when no --rate (default: enough for 8,000/s)"
    )
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--workers", type=int, default=1, help="gateway worker processes on one shared subscription")
    parser.add_argument("--database", default=None, help="database URL (default: a fresh SQLite file)")
    parser.add_argument("--skip-ceiling", action="store_true")
    parser.add_argument(
        "--rogue", action="store_true", help="access rules on, and a device login trying to join the gateways' share"
    )
    parser.add_argument("--skip-tls", action="store_true", help="no second gateway run over TLS (mqtts)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    total = (
        int(args.rate * args.seconds)
        if args.rate
        else (args.per_device or 0) * args.devices or int(8_000 * args.seconds)
    )
    per_device = max(1, total // args.devices)
    work = Path(tempfile.mkdtemp(prefix="assetproof-bench-ingest-"))
    try:
        started = time.perf_counter()
        load = generate_load(devices=args.devices, per_device=per_device)
        load_file = work / "load.pickle"
        load_file.write_bytes(pickle.dumps(load, protocol=pickle.HIGHEST_PROTOCOL))
        generate_s = time.perf_counter() - started
        ceiling = (
            None
            if args.skip_ceiling
            else run_ceiling(load, load_file, work, rate=args.rate, connections=args.connections)
        )
        gateway = run_gateway(
            load,
            load_file,
            work,
            rate=args.rate,
            connections=args.connections,
            database=args.database,
            workers=args.workers,
            rogue=args.rogue,
        )
        # The same workload again over TLS, into a fresh database (the same readings would be duplicates).
        tls_run = (
            None
            if args.skip_tls
            else run_gateway(
                load,
                load_file,
                work / "tls-run",
                rate=args.rate,
                connections=args.connections,
                database=None,
                workers=args.workers,
                rogue=args.rogue,
                tls=True,
            )
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result: dict[str, Any] = {
        "devices": args.devices,
        "rate": args.rate,
        "workers": args.workers,
        **{k: (round(v, 2) if isinstance(v, float) else v) for k, v in gateway.items()},
        "ceiling_msgs_s": round(ceiling["msgs_s"], 1) if ceiling else None,
        "ratio": round(gateway["throughput_msgs_s"] / ceiling["msgs_s"], 3) if ceiling else None,
        "ceiling_received": ceiling["received"] if ceiling else None,
        "generate_s": round(generate_s, 2),
        "tls_throughput_msgs_s": round(tls_run["throughput_msgs_s"], 2) if tls_run else None,
        "tls_lost": tls_run["lost"] if tls_run else None,
        "tls_p99_ms": round(tls_run["p99_ms"], 2) if tls_run else None,
        "tls_ratio": round(tls_run["throughput_msgs_s"] / gateway["throughput_msgs_s"], 3) if tls_run else None,
    }
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>20}  {value}")
    tls_ok = tls_run is None or (tls_run["lost"] == 0 and tls_run["duplicates_stored"] == 0)
    return 0 if result["lost"] == 0 and result["duplicates_stored"] == 0 and tls_ok else 1


if __name__ == "__main__":
    sys.exit(main())
