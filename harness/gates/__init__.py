"""Regression gates: noise-aware, direction-aware comparisons of a run's metrics with a baseline."""
