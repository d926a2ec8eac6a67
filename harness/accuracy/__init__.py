"""Accuracy: lm-eval through the served model, offline tasks the project makes, stderr-aware baselines."""
