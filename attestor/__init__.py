"""The attestor: the persisted Merkle log, epochs and their metadata, anchoring on chain."""
