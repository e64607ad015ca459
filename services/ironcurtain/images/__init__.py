"""Our container images: which exist, what goes into each, and building the changed ones."""
