"""docs/formats.md's contract reference cannot drift from the committed ABIs: it is regenerated
here (scripts/gen_chain_reference.py) and must equal the page."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "gen_chain_reference.py"


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_chain_reference", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_committed_reference_is_what_the_abis_give() -> None:
    page = (REPO / "docs" / "formats.md").read_text()
    assert _generator().render(page) == page, "docs/formats.md is stale: run scripts/gen_chain_reference.py"


def test_every_event_names_its_indexed_fields() -> None:
    page = (REPO / "docs" / "formats.md").read_text()
    abi = json.loads((REPO / "chain" / "artifacts" / "AnchorRegistry.json").read_text())["abi"]
    anchored = next(e for e in abi if e.get("name") == "Anchored")
    assert [i["name"] for i in anchored["inputs"] if i["indexed"]] == ["epoch"]
    assert (
        "`Anchored(uint64 indexed epoch, uint64 treeSize, bytes32 root, bytes32 metaHash, bytes32 assetsRoot)`" in page
    )
