"""``assetproof demo``: the whole pipeline on one machine, with a live view (may import anything,
like ``bench``: it is the composition root)."""
