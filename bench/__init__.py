"""Benchmarks of adspec: how fast, how cheap, how it scales. Run `python -m bench` (see
bench/__main__.py); results in bench/results/*.json, plots in docs/*.png."""
