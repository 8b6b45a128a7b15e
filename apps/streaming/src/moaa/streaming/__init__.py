"""moaa streaming: Spark jobs and the MongoDB insert job (see README.md)."""
