"""Compile the contracts with the pinned npm solc and write the committed artifacts.

    python -m chain.compile            # regenerate chain/artifacts/*.json
    python -m chain.compile --check    # exit 1 if the committed artifacts differ from a fresh compile

The compiler is solcjs from ``chain/node_modules`` (``npm ci --prefix chain``), driven through
standard JSON by ``chain/solc_compile.js``. Sources are passed by their path relative to
``chain/`` (``contracts/AnchorRegistry.sol``), so the metadata hash inside the bytecode, and
with it the whole artifact, is the same on every machine. Users need no compiler: the
artifacts are committed and :func:`chain._artifacts.load_artifact` reads them.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from chain.errors import CompileError

__all__ = [
    "ARTIFACTS_DIR",
    "CONTRACTS",
    "EVM_VERSION",
    "OPTIMIZER",
    "check_artifacts",
    "compile_contracts",
    "main",
    "render_artifacts",
    "write_artifacts",
]

CHAIN_DIR = Path(__file__).resolve().parent
CONTRACTS_DIR = CHAIN_DIR / "contracts"
ARTIFACTS_DIR = CHAIN_DIR / "artifacts"
SOLC_BRIDGE = CHAIN_DIR / "solc_compile.js"

CONTRACTS = ("AnchorRegistry", "DemoStablecoin", "DeviceRegistry", "ReadingVerifier", "ShareToken", "TariffRegistry")
"""The deployable contracts, each with a committed artifact; every ``*.sol`` file in
``contracts/`` is compiled (a base such as ``Governed.sol`` has no artifact of its own)."""
EVM_VERSION = "cancun"
"""Supported by anvil's default hardfork and by eth-tester's py-evm (Prague): both run it."""
OPTIMIZER: Mapping[str, Any] = {"enabled": True, "runs": 10_000}
VIA_IR = False

_TIMEOUT_S = 120


def _source_name(contract: str) -> str:
    return f"contracts/{contract}.sol"


def _sources(contracts_dir: Path) -> dict[str, str]:
    sources = {}
    for path in sorted({*contracts_dir.glob("*.sol"), *(contracts_dir / f"{c}.sol" for c in CONTRACTS)}):
        try:
            sources[f"contracts/{path.name}"] = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise CompileError(f"cannot read {path}: {exc}") from exc
    return sources


def standard_input(sources: Mapping[str, str]) -> dict[str, Any]:
    """The solc standard-JSON input for ``sources`` (path -> text)."""
    return {
        "language": "Solidity",
        "sources": {name: {"content": text} for name, text in sorted(sources.items())},
        "settings": {
            "evmVersion": EVM_VERSION,
            "optimizer": dict(OPTIMIZER),
            "viaIR": VIA_IR,
            "outputSelection": {
                "*": {
                    "*": [
                        "abi",
                        "evm.bytecode.object",
                        "evm.deployedBytecode.object",
                        "evm.deployedBytecode.immutableReferences",
                    ]
                }
            },
        },
    }


def _run_solc(compiler_input: Mapping[str, Any], *, node: str | None) -> tuple[str, dict[str, Any]]:
    node_bin = node or shutil.which("node")
    if node_bin is None:
        raise CompileError("node is not installed: the compiler is the npm solc package, run by node")
    if not (CHAIN_DIR / "node_modules" / "solc").is_dir():
        raise CompileError("the npm solc package is missing: run `npm ci --prefix chain`")
    try:
        done = subprocess.run(  # noqa: S603 - fixed argv, our own script
            [node_bin, str(SOLC_BRIDGE)],
            input=json.dumps(compiler_input),
            capture_output=True,
            text=True,
            cwd=CHAIN_DIR,
            timeout=_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CompileError(f"running solc failed: {exc}") from exc
    if done.returncode != 0:
        raise CompileError(f"solc exited with {done.returncode}: {done.stderr.strip()}")
    result = json.loads(done.stdout)
    return str(result["version"]), result["output"]


def compile_contracts(*, contracts_dir: Path = CONTRACTS_DIR, node: str | None = None) -> dict[str, dict[str, Any]]:
    """Compile the contracts; return the artifact (a JSON-ready dict) of each, by name.

    Errors and warnings alike raise :class:`CompileError` with solc's messages: the sources
    compile cleanly or not at all.
    """
    sources = _sources(contracts_dir)
    version, output = _run_solc(standard_input(sources), node=node)
    problems = [e for e in output.get("errors", []) if e.get("severity") in ("error", "warning")]
    if problems:
        raise CompileError("solc:\n" + "\n".join(e["formattedMessage"] for e in problems))
    source_hashes = {name: hashlib.sha256(text.encode()).hexdigest() for name, text in sorted(sources.items())}
    all_sources = hashlib.sha256(
        b"".join(name.encode() + b"\0" + text.encode() + b"\0" for name, text in sorted(sources.items()))
    ).hexdigest()
    artifacts = {}
    for contract in CONTRACTS:
        out = output["contracts"][_source_name(contract)][contract]
        evm = out["evm"]
        artifacts[contract] = {
            "contractName": contract,
            "sourceName": _source_name(contract),
            "abi": out["abi"],
            "bytecode": "0x" + evm["bytecode"]["object"],
            "deployedBytecode": "0x" + evm["deployedBytecode"]["object"],
            "immutableReferences": evm["deployedBytecode"].get("immutableReferences", {}),
            "compiler": {"name": "solc", "version": version, "package": "npm solc (solcjs)"},
            "settings": {"evmVersion": EVM_VERSION, "optimizer": dict(OPTIMIZER), "viaIR": VIA_IR},
            "sourceSha256": source_hashes[_source_name(contract)],
            "sourcesSha256": all_sources,
        }
    return artifacts


def render_artifacts(artifacts: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """File name -> exact file text, as committed."""
    return {
        f"{name}.json": json.dumps(artifact, indent=2, sort_keys=True) + "\n" for name, artifact in artifacts.items()
    }


def write_artifacts(artifacts: Mapping[str, Mapping[str, Any]], *, directory: Path = ARTIFACTS_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for file_name, text in render_artifacts(artifacts).items():
        path = directory / file_name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def check_artifacts(
    *, directory: Path = ARTIFACTS_DIR, contracts_dir: Path = CONTRACTS_DIR, node: str | None = None
) -> list[str]:
    """The committed artifact files that differ from a fresh compile (empty when all match)."""
    fresh = render_artifacts(compile_contracts(contracts_dir=contracts_dir, node=node))
    differing = []
    for file_name, text in fresh.items():
        path = directory / file_name
        try:
            committed = path.read_text(encoding="utf-8")
        except OSError:
            differing.append(f"{file_name}: missing")
            continue
        if committed != text:
            differing.append(f"{file_name}: differs from a fresh compile")
    return differing


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chain.compile", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare the committed artifacts with a fresh compile")
    args = parser.parse_args(argv)
    try:
        if args.check:
            differing = check_artifacts()
            for line in differing:
                print(line, file=sys.stderr)
            if differing:
                print("run `python -m chain.compile` and commit chain/artifacts/", file=sys.stderr)
                return 1
            print("artifacts match a fresh compile")
            return 0
        for path in write_artifacts(compile_contracts()):
            print(f"wrote {path.relative_to(CHAIN_DIR.parent)}")
        return 0
    except CompileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
