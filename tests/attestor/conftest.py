"""The attestor's tests run on both chains too (fixtures shared with tests/chain)."""

from tests.chain.conftest import anvil_node, chain, w3  # noqa: F401  (pytest fixtures)
