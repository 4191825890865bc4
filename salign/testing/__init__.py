"""Helpers for tests and benchmarks: tiny synthetic ST data sets in ESPnet's formats."""
