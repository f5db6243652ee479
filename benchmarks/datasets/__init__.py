"""Seeded synthetic datasets for the benchmarks (pure numpy; no downloads)."""
