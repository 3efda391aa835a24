"""The side-by-side load and energy harness behind benches/bench.py."""
