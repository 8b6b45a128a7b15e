"""moaa shared pieces: settings, logging, metrics, the observation schema and ISD parsing."""
