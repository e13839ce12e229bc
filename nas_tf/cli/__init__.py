"""Command-line plumbing shared by the absl scripts in ``scripts/``."""
