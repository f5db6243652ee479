"""The sievedb benchmark suite (run modules with `python -m benchmarks.<name>` from the repo root)."""
