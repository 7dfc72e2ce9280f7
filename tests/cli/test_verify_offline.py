"""``assetproof verify --offline``: exit codes and messages, run as a user would."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from protocol.bundle import Checkpoint, ProofBundle
from protocol.envelope import sign_body
from protocol.merkle.log import MerkleLog
from protocol.signing import DeviceKey
from tests.support.envelopes import body


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from cli.main import app; app()", *args], capture_output=True, text=True, check=False
    )


@pytest.fixture
def bundle_file(tmp_path: Path) -> Path:
    key = DeviceKey.generate("ed25519")
    messages = [sign_body(body(seq=1), key)]
    messages.append(sign_body(body(seq=2, prev=messages[0].chain_hash), key))
    log = MerkleLog()
    log.extend(m.raw for m in messages)
    bundle = ProofBundle(
        message=messages[1].raw,
        device_id="sol-0001",
        alg="ed25519",
        public_key=key.public_key,
        leaf_index=1,
        tree_size=2,
        inclusion_proof=tuple(log.inclusion_proof(1, 2)),
        checkpoint=Checkpoint(epoch=0, tree_size=2, root=log.root(), meta_hash=b"\x00" * 32),
    )
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(bundle.to_json()))
    return path


def test_valid(bundle_file: Path) -> None:
    out = _run("verify", str(bundle_file), "--offline", "--json")
    assert out.returncode == 0, out.stderr
    verdict = json.loads(out.stdout)
    assert verdict["valid"] is True
    assert verdict["seq"] == 2


def test_invalid_names_the_check(bundle_file: Path) -> None:
    obj = json.loads(bundle_file.read_text())
    obj["checkpoint"]["root"] = "11" * 32
    bundle_file.write_text(json.dumps(obj))
    out = _run("verify", str(bundle_file), "--offline")
    assert out.returncode == 1
    assert "root_mismatch" in out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize("content", ["", "{", '{"format": "x"}'])
def test_unusable_input(tmp_path: Path, content: str) -> None:
    path = tmp_path / "b.json"
    path.write_text(content)
    out = _run("verify", str(path), "--offline")
    assert out.returncode == 2
    assert len(out.stderr.strip().splitlines()) == 1
    assert "Traceback" not in out.stderr
    missing = _run("verify", str(tmp_path / "absent.json"), "--offline")
    assert missing.returncode == 2
    assert "cannot read" in missing.stderr
