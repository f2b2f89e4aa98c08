"""Benchmarks (`make bench`): each module's `run()` returns its figures; peers run in the same process."""
