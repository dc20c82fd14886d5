"""Reliability: crashes, faults, hostile input, resource limits."""
