"""The ``assetproof`` console command: a thin front over every part."""
