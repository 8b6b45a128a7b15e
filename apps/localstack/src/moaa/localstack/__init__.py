"""moaa local stack: the real Kafka and FerretDB processes behind `make demo` and the tests."""
