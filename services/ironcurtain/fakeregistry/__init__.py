"""A local stand-in for package registries in tests: static PyPI/npm/apt files over TLS."""
