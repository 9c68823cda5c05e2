"""Helpers for tests and benchmarks: real external services started on loopback."""
