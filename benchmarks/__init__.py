"""Benchmarks of captum_lr against its peers (not part of the test suite)."""
