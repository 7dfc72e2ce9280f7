"""Regenerate docs/formats.md's contract reference (events with their indexed fields, views with
their argument and return types) from the committed ABIs in chain/artifacts/, so a third-party
chain reader's page cannot drift from what is deployed.

    .venv/bin/python scripts/gen_chain_reference.py          # rewrite the generated block
    .venv/bin/python scripts/gen_chain_reference.py --check  # exit 1 if the page is stale

Only the block between ``<!-- generated:chain-abi -->`` and ``<!-- /generated:chain-abi -->`` is
rewritten; tests/chain/test_chain_reference_doc.py fails until it is run.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "formats.md"
ARTIFACTS = REPO / "chain" / "artifacts"
CONTRACTS = ("AnchorRegistry", "DeviceRegistry", "TariffRegistry", "ReadingVerifier", "ShareToken", "DemoStablecoin")
_BLOCK = re.compile(r"(<!-- generated:chain-abi -->\n).*?(<!-- /generated:chain-abi -->)", re.S)


def _type(item: dict[str, Any]) -> str:
    if item["type"].startswith("tuple"):
        inner = ", ".join(f"{_type(c)} {c['name']}" for c in item["components"])
        return f"({inner}){item['type'][5:]}"
    return str(item["type"])


def _event(item: dict[str, Any]) -> str:
    args = ", ".join(f"{_type(i)}{' indexed' if i['indexed'] else ''} {i['name']}" for i in item["inputs"])
    return f"`{item['name']}({args})`"


def _view(item: dict[str, Any]) -> str:
    args = ", ".join(f"{_type(i)} {i['name']}".strip() for i in item["inputs"])
    outs = ", ".join(f"{_type(o)} {o['name']}".strip() for o in item["outputs"])
    return f"`{item['name']}({args})` → `({outs})`"


def reference() -> str:
    lines: list[str] = []
    for name in CONTRACTS:
        abi = json.loads((ARTIFACTS / f"{name}.json").read_text())["abi"]
        events = sorted((e for e in abi if e["type"] == "event"), key=lambda e: e["name"])
        views = sorted(
            (f for f in abi if f["type"] == "function" and f["stateMutability"] in ("view", "pure")),
            key=lambda f: f["name"],
        )
        errors = sorted(e["name"] for e in abi if e["type"] == "error")
        lines.append(f"**{name}**\n")
        lines.extend(f"- event {_event(e)}" for e in events)
        lines.extend(f"- view {_view(v)}" for v in views)
        if errors:
            lines.append(f"- errors: {', '.join(f'`{e}`' for e in errors)}")
        lines.append("")
    return "\n".join(lines)


def render(page: str) -> str:
    if not _BLOCK.search(page):
        raise SystemExit(f"{DOC} has no <!-- generated:chain-abi --> block")
    return _BLOCK.sub(lambda m: m.group(1) + reference() + m.group(2), page)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="exit 1 if the page is not what it would be")
    args = parser.parse_args(argv)
    current = DOC.read_text()
    fresh = render(current)
    if args.check:
        if fresh != current:
            print(f"{DOC.relative_to(REPO)} is stale: run scripts/gen_chain_reference.py", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(fresh)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
