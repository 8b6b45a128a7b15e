"""moaa producer (see README.md)."""
