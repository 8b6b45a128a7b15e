"""moaa data commands: download, prepare, synth (see README.md)."""
