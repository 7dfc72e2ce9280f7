import json
from pathlib import Path
from typing import Any

import pytest

VECTORS = Path(__file__).parent / "vectors"


def load_vector(name: str) -> Any:
    return json.loads((VECTORS / name).read_text())


@pytest.fixture(scope="session")
def merkle_vectors() -> Any:
    return load_vector("merkle_rfc6962_reference_8leaf.json")
