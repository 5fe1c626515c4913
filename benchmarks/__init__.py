"""The benchmarks behind bench.py, one module per benchmark; common.py holds what they share."""
