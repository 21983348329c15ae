"""Benchmarks of cyclicsess and its peers: run each as ``python -m bench.NAME`` (see Makefile)."""
