"""Benchmarks run by ``make bench``: extraction speed and accuracy, service latency."""
