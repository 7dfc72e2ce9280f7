"""An auditor trusts nothing the operator runs: ``auditor/`` imports only ``protocol`` and the
read-only part of ``chain`` (DESIGN.md). Checked on the source, so a new import cannot slip in."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

AUDITOR = Path(__file__).resolve().parents[2] / "auditor"
READ_ONLY_CHAIN = {
    "chain.reader": {"ChainReader"},
    "chain.types": {"Checkpoint", "KeyEnd", "KeyRecord"},
    "chain.ids": {"asset_id_hash", "device_id_hash"},
    "chain.deployment": None,  # None: any name
    "chain.errors": None,
    "chain.rpc": {"connect_reader"},
}


def _imports(path: Path) -> list[tuple[str, str | None]]:
    found: list[tuple[str, str | None]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.extend((alias.name, None) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path.name}: relative import"
            found.extend((node.module or "", alias.name) for alias in node.names)
    return found


def _allowed(module: str, name: str | None) -> bool:
    top = module.split(".")[0]
    if top in ("protocol", "auditor") or top in sys.stdlib_module_names or module == "__future__":
        return True
    if module in READ_ONLY_CHAIN:
        names = READ_ONLY_CHAIN[module]
        return name is not None and (names is None or name in names)
    return False


def test_auditor_imports_only_protocol_and_the_read_only_chain() -> None:
    sources = sorted(AUDITOR.glob("*.py"))
    assert sources
    offending = [
        f"{path.name}: {module}{'.' + name if name else ''}"
        for path in sources
        for module, name in _imports(path)
        if not _allowed(module, name)
    ]
    assert offending == []


def test_the_rule_would_catch_an_operator_import() -> None:
    assert not _allowed("store.db", "make_engine")
    assert not _allowed("attestor.bundles", "build_bundle")
    assert not _allowed("chain.writer", "ChainClient")
    assert not _allowed("web3", None)
    assert _allowed("chain.reader", "ChainReader")
