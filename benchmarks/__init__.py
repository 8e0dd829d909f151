"""Benchmarks of interlace, run by hand (``benchmarks/run_benchmarks.py``); not part of the installed package."""
