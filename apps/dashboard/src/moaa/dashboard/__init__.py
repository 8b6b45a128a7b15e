"""moaa dashboard (see README.md)."""
