"""What the packages agree on, importing nothing of the project (no torch, no Flask)."""
