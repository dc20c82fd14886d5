"""The benchmarks behind BENCHMARKS.md; run each as a module from the repository root: ``python -m bench.ingest``."""
