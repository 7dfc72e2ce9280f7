"""One chain key per role for a local stack: the demo's and docker-compose's.

A deployment whose operator also holds the registrar's, pricing authority's and governor's keys
could register phantom devices, reprice the past and replace itself: exactly what the roles exist
to prevent. So even the demo runs with four distinct keys, generated fresh (never anvil's
published ones) and kept in a 0600 file: ``python -m devstack.role_keys FILE`` writes it if it is
missing and prints the ``ASSETPROOF_*_KEY`` lines for an env file.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
from pathlib import Path
from typing import Final

__all__ = ["ROLE_SETTINGS", "role_keys"]

ROLE_SETTINGS: Final = {
    "attestor": "ASSETPROOF_ATTESTOR_KEY",
    "registrar": "ASSETPROOF_REGISTRAR_KEY",
    "pricing_authority": "ASSETPROOF_PRICING_KEY",
    "governor": "ASSETPROOF_GOVERNOR_KEY",
}
"""Role (as ``chain.types.Roles`` names it) -> the setting that holds its key."""


def role_keys(path: Path) -> dict[str, str]:
    """The role keys kept in ``path`` (JSON, mode 0600), created there first if missing."""
    if path.exists():
        keys: dict[str, str] = json.loads(path.read_text(encoding="utf-8"))
        if set(keys) != set(ROLE_SETTINGS):
            raise ValueError(f"{path} must hold exactly the keys {sorted(ROLE_SETTINGS)}")
        return keys
    keys = {role: "0x" + secrets.token_bytes(32).hex() for role in ROLE_SETTINGS}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(keys, handle, indent=2, sort_keys=True)
    return keys


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m devstack.role_keys FILE", file=sys.stderr)
        return 2
    for role, key in role_keys(Path(args[0])).items():
        print(f"{ROLE_SETTINGS[role]}={key}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
