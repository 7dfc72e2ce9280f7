"""Who may import whom (DESIGN.md, "Packages (top-level folders) and who may import whom"),
checked on the source so that a new import cannot slip in: every import statement of every
module, at module level and inside functions, parsed with ``ast``.

Imports under ``if TYPE_CHECKING:`` are exempt: they never run, so they add no dependency, only
names for the type checker (devstack names web3 types that way).
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

SERVICES = ("device_sim", "store", "gateway", "chain", "attestor", "auditor", "api", "registrar")
LOCAL = (*SERVICES, "protocol", "config", "devstack", "cli", "demo", "bench", "tests")

# The "may import" column, first-party packages only (a package may always import itself).
# ``config`` may be imported by every package except protocol; ``cli`` by none.
MAY_IMPORT: dict[str, set[str]] = {
    "protocol": set(),
    "config": {"protocol"},
    "device_sim": {"protocol", "config"},
    "store": {"protocol", "config"},
    "gateway": {"protocol", "store", "config"},
    "chain": {"protocol", "config"},
    "attestor": {"protocol", "store", "chain", "config"},
    "auditor": {"protocol", "chain", "config"},  # chain read-only: see READ_ONLY_CHAIN
    "api": {"protocol", "store", "attestor", "config"},
    # The registrar's checks and registrations: never the operator's state (store, gateway).
    "registrar": {"protocol", "chain", "config"},
    "devstack": {"protocol", "device_sim", "store", "chain", "registrar", "config"},
    "cli": set(LOCAL) - {"tests"},
    "demo": set(LOCAL) - {"cli", "tests"},
    "bench": set(LOCAL) - {"cli", "tests"},
    "tests": set(LOCAL),
}

# protocol is consensus-critical and pure: beyond the standard library, only these.
PROTOCOL_THIRD_PARTY = {"cryptography", "rfc8785"}

# Only chain talks to a node; everyone else goes through chain's client.
WEB3_ONLY_IN = {"chain", "tests"}

# An auditor trusts nothing the operator runs: of chain, only the read-only part.
READ_ONLY_CHAIN: dict[str, set[str] | None] = {
    "chain.reader": {"ChainReader"},
    "chain.types": {
        "Checkpoint",
        "KeyEnd",
        "KeyRecord",
        "DeviceProfile",
        "DeviceRegisteredEvent",
        "KeyRotatedEvent",
        "DeviceRevokedEvent",
        "RegistryEvent",
        "RegisteredDevice",
        "PublishedTariff",
        "Roles",
        "RegistryParams",
        "PendingRoleChange",
        "RoleEvent",
        "RoleEventKind",
        "OnchainReason",
        "OnchainVerdict",
    },
    "chain.ids": {"asset_id_hash", "device_id_hash"},
    "chain.deployment": None,  # None: any name
    "chain.errors": None,
    "chain.rpc": {"connect_reader"},
    # Cash-flow tokens: read-only views of distributions and claims (the auditor's check of them).
    "chain.tokens": {"TokenReader"},
    "chain.token_types": {"tokens_section"},
}


@dataclass(frozen=True, slots=True)
class Import:
    path: Path
    line: int
    module: str  # absolute, dotted
    name: str | None  # the imported name of ``from module import name``

    def __str__(self) -> str:
        where = self.path.relative_to(ROOT)
        return f"{where}:{self.line}: {self.module}{'.' + self.name if self.name else ''}"


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _package_of(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])


def _absolute(path: Path, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    parts = _package_of(path).split(".")
    base = parts[: len(parts) - node.level + 1]
    return ".".join([*base, node.module] if node.module else base)


def imports_of(path: Path) -> list[Import]:
    """Every import that can run: the whole tree, skipping ``if TYPE_CHECKING:`` bodies."""
    found: list[Import] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.extend(Import(path, node.lineno, alias.name, None) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = _absolute(path, node)
            found.extend(Import(path, node.lineno, module, alias.name) for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(), str(path)))
    return found


def sources(package: str) -> list[Path]:
    return sorted(p for p in (ROOT / package).rglob("*.py") if "node_modules" not in p.parts)


def violation(package: str, imp: Import) -> str | None:
    """Why ``imp``, found in ``package``, breaks a rule; None when it is allowed."""
    top = imp.module.split(".")[0]
    if imp.module == "__future__" or top in sys.stdlib_module_names:
        return None
    if top in LOCAL:
        if top == package:
            return None
        if top not in MAY_IMPORT[package]:
            return f"{package} may not import {top}"
        if package == "auditor" and top == "chain":
            names = READ_ONLY_CHAIN.get(imp.module, set())
            if imp.name is None or (names is not None and imp.name not in names):
                return "auditor may use only the read-only part of chain"
        return None
    if package == "protocol" and top not in PROTOCOL_THIRD_PARTY:
        return f"protocol may import only the standard library and {sorted(PROTOCOL_THIRD_PARTY)}"
    if top == "web3" and package not in WEB3_ONLY_IN:
        return "only chain imports web3"
    return None


def test_every_top_level_package_has_a_row() -> None:
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")} | {p.parent.name for p in ROOT.glob("*/*.py")}
    unknown = packages - set(LOCAL) - {"scripts", "deploy", "docs"}
    assert unknown == set(), f"add a row for {sorted(unknown)} to DESIGN.md and to MAY_IMPORT"


@pytest.mark.parametrize("package", sorted(MAY_IMPORT))
def test_imports_follow_the_package_table(package: str) -> None:
    found = sources(package)
    assert found, f"no sources under {package}/"
    offending = [f"{imp} ({why})" for path in found for imp in imports_of(path) if (why := violation(package, imp))]
    assert offending == []


@pytest.mark.parametrize(
    ("package", "module", "name"),
    [
        ("auditor", "store.db", "make_engine"),
        ("auditor", "attestor.bundles", "build_bundle"),
        ("auditor", "chain.writer", "ChainClient"),
        ("auditor", "web3", None),
        ("gateway", "devstack.anvil", "AnvilNode"),
        ("api", "gateway.service", None),
        ("protocol", "config.settings", "Settings"),
        ("protocol", "sqlalchemy", None),
        ("store", "web3", None),
        ("demo", "cli.main", None),
        ("bench", "cli", None),
        ("devstack", "gateway.service", None),
    ],
)
def test_the_rules_would_catch(package: str, module: str, name: str | None) -> None:
    assert violation(package, Import(ROOT / package / "x.py", 1, module, name)) is not None


@pytest.mark.parametrize(
    ("package", "module", "name"),
    [
        ("auditor", "chain.reader", "ChainReader"),
        ("auditor", "config.settings", "Settings"),
        ("devstack", "chain.writer", None),
        ("cli", "devstack.anvil", None),
        ("protocol", "cryptography.exceptions", None),
        ("chain", "web3", None),
    ],
)
def test_the_rules_allow(package: str, module: str, name: str | None) -> None:
    assert violation(package, Import(ROOT / package / "x.py", 1, module, name)) is None


def test_type_checking_imports_are_exempt_and_function_level_ones_are_not(tmp_path: Path) -> None:
    source = tmp_path / "probe.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from web3 import Web3\n"
        "def f():\n    from store.db import make_engine\n"
    )
    modules = [imp.module for imp in imports_of(source)]
    assert "web3" not in modules
    assert "store.db" in modules
