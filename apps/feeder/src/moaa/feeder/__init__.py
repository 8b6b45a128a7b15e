"""moaa feeder (see README.md)."""
