"""Benchmarks: each bench/<name>.py defines run() -> dict of flat figures, units in the keys."""
