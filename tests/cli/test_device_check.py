"""``assetproof device check`` on the conformance vectors: every vector gets its expected verdict,
in every input form; the vectors themselves are what scripts/gen_conformance_vectors.py writes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from protocol.envelope import decode_message
from store.db import make_engine, migrate
from store.devices import NewDevice, ensure_asset, register_devices
from tests.support.processes import REPO

VECTORS = REPO / "tests" / "vectors" / "conformance"
NOW_MS = json.loads((VECTORS / "devices.json").read_text())["now_ms"]


def _vectors() -> list[dict[str, str]]:
    return [json.loads(line) for line in (VECTORS / "vectors.jsonl").read_text().splitlines()]


def _check(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "cli", "device", "check", *args, "--now-ms", str(NOW_MS)],
        cwd=REPO,
        input=stdin,
        capture_output=True,
        check=False,
    )


def _devices_args() -> list[str]:
    return ["--devices", str(VECTORS / "devices.json")]


def test_the_vectors_are_what_the_generator_writes() -> None:
    out = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "gen_conformance_vectors.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr


def test_the_vectors_cover_both_algorithms_and_every_kind_of_fault() -> None:
    vectors = _vectors()
    assert {v["alg"] for v in vectors} == {"ed25519", "es256"}
    for alg in ("ed25519", "es256"):
        expected = {v["expected"] for v in vectors if v["alg"] == alg}
        assert expected >= {
            "accepted",
            "duplicate",
            "bad_signature",
            "non_canonical",
            "oversized",
            "malformed",
            "unsupported_alg",
            "topic_mismatch",
            "implausible",
            "clock_skew",
            "kind_mismatch",
            "replay",
            "gap",
            "bad_prev",
            "unknown_device",
        }
    for v in vectors:
        if v["expected"] == "accepted":
            assert decode_message(v["message"].encode()).alg == v["alg"]


def test_each_vector_gets_its_verdict() -> None:
    vectors = _vectors()
    out = _check(str(VECTORS / "vectors.jsonl"), *_devices_args(), "--json")
    assert out.returncode == 1, out.stderr  # some are refused, by design
    verdicts = json.loads(out.stdout)["messages"]
    assert [(v["name"], v["verdict"]) for v in verdicts] == [(v["name"], v["expected"]) for v in vectors]
    assert all(v["detail"] for v in verdicts if v["verdict"] not in ("accepted", "duplicate"))

    text = _check(str(VECTORS / "vectors.jsonl"), *_devices_args()).stdout.decode().splitlines()
    assert text[0] == "   1  ed25519/first-reading: accepted"
    assert "  ed25519/oversized: oversized: message is 4097 bytes, more than 4096" in "\n".join(text)
    assert text[-1].startswith(f"{len(vectors)} message(s): accepted ")


def test_plain_lines_a_json_array_and_stdin() -> None:
    vectors = [v for v in _vectors() if v["alg"] == "es256" and v["topic"].endswith("/conf-evc-es256/telemetry")]
    accepted_run = [v for v in vectors if v["name"] in ("es256/first-reading", "es256/second-reading")]
    lines = b"".join(v["message"].encode() + b"\n" for v in accepted_run)
    out = _check("-", *_devices_args(), stdin=lines)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.decode().splitlines()[:2] == [
        "   1  conf-evc-es256#1: accepted",
        "   2  conf-evc-es256#2: accepted",
    ]
    # A JSON array of message objects (encoded with RFC 8785) and exact strings.
    first, second = (json.loads(v["message"]) for v in accepted_run)
    array = json.dumps([first, accepted_run[1]["message"], second]).encode()
    out = _check("-", *_devices_args(), "--json", stdin=array)
    assert out.returncode == 0, out.stderr
    assert [m["verdict"] for m in json.loads(out.stdout)["messages"]] == ["accepted", "accepted", "duplicate"]


def test_registrations_from_the_database(tmp_path: Path) -> None:
    devices = json.loads((VECTORS / "devices.json").read_text())["devices"]
    url = f"sqlite:///{tmp_path / 'store.db'}"
    engine = make_engine(url)
    migrate(engine)
    for d in devices:
        ensure_asset(engine, name=d["asset"], kind=d["kind"], now_ms=NOW_MS)
        register_devices(
            engine,
            asset=d["asset"],
            devices=[
                NewDevice(
                    id=d["id"],
                    kind=d["kind"],
                    alg=d["alg"],
                    public_key=bytes.fromhex(d["public_key"]),
                    rating=d["rating"],
                    window_s=d["window_s"],
                )
            ],
            now_ms=NOW_MS,
        )
    engine.dispose()
    out = _check(str(VECTORS / "vectors.jsonl"), "--database", url, "--json")
    assert [m["verdict"] for m in json.loads(out.stdout)["messages"]] == [v["expected"] for v in _vectors()]


def test_unusable_input_is_exit_2_with_one_line(tmp_path: Path) -> None:
    for args, stdin in (
        ([str(tmp_path / "missing.jsonl"), *_devices_args()], None),
        (["-", *_devices_args()], b""),
        (["-", *_devices_args()], b"[1, 2"),
        (["-", "--devices", str(tmp_path / "none.json")], b"{}\n"),
    ):
        out = _check(*args, stdin=stdin)
        assert out.returncode == 2, (args, out.stdout, out.stderr)
        message = out.stderr.decode().strip()
        assert message.startswith("error: ")
        assert "\n" not in message
