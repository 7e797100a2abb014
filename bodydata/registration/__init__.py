"""Connectivity conversion (paper Eq. 14): sparse part-based ACAP prior, non-rigid registration, metrics, benchmarks."""
